"""Where and how to compute: the device, the autocast precision, the memory layout, seeding, and
the process settings that must be made before torch is imported.

This module imports torch only inside the functions that use it, so that a command line that
imports it first (to make those settings) pays for torch only when it needs it (--help does not).

OMP_WAIT_POLICY=PASSIVE (unless already set): with libgomp's default an intra-op thread that
reaches a barrier spins, so on a CPU shared with other processes every parallel region can cost a
scheduler time slice (README, Performance). Numerics are unchanged; set OMP_WAIT_POLICY=ACTIVE in
the environment on a dedicated machine. The command lines import this module before torch."""

import os
import random

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from voxtrainer.errors import InputError  # noqa: E402

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name, local_rank=0):
    """torch.device for --device auto|cpu|cuda (auto: CUDA when present)."""
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (use --device cpu)")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def autocast_dtype(device):
    """--mixedprec's precision: fp16 (with loss scaling) on CUDA, bf16 on CPU."""
    import torch
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def preferred_memory_format(device, model_name=None):
    """channels_last on CPU, where oneDNN's NHWC convolutions are faster for every model here
    (README, Performance); on CUDA the model file's measured CUDA_MEMORY_FORMAT (contiguous without a
    model, or where it declares none): voxtrainer.precision.memory_format_for. Checkpoints are
    saved contiguous."""
    import torch
    from voxtrainer.precision import memory_format_for
    return memory_format_for(model_name or "", torch.device(device).type)


def cpu_flags():
    """The instruction-set flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16():
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 with BF16, or AMX); elsewhere bf16
    autocast is emulated and several times slower than fp32."""
    import torch
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def mixedprec_warning(device):
    """Why --mixedprec is a bad idea on this device, or None."""
    import torch
    if torch.device(device).type == "cpu" and not cpu_has_native_bf16():
        return ("--mixedprec on CPU runs bf16 autocast, but this CPU has no native bf16 (oneDNN needs "
                "AVX-512 or AMX): bf16 is emulated and a train step is several times slower than fp32 "
                "(python -m tools.benchmark measures it); consider leaving --mixedprec off")
    return None


def loader_processes(requested):
    """At most one audio-loading process per usable core: more only compete for the cores (and
    make PyTorch warn at every loader). The reduction is said once, on one line."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    if requested <= cores:
        return requested
    from voxtrainer import log
    log.info("--nDataLoaderThread %d: this machine has %d usable cores, so %d loader processes are used" % (
        requested, cores, cores))
    return cores


def seed_everything(seed):
    """Python's, numpy's and torch's generators: weights, sampling and crops follow from the seed."""
    import numpy
    import torch
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)
