"""The training precision (--precision), and the per-network speed settings that do not change the
arithmetic: memory layout (--memory_format) and cuDNN's algorithm search (--cudnn_benchmark).

  fp32  the seed's arithmetic. On CUDA, TF32 is switched off for matmuls AND for cuDNN's
        convolutions (PyTorch leaves cuDNN's TF32 on by default, which rounds convolution inputs to
        10 mantissa bits): fp32 means fp32 there too. Layout and kernel choice may still change
        the last bits.
  tf32  fp32 weights and tensors, TF32 tensor-core matmuls and convolutions (CUDA only; on the CPU
        it does not apply: fp32 is used, and one line says so).
  bf16  bf16 autocast (weights and optimizer in fp32); no loss scaling is needed.
  fp16  fp16 autocast with loss scaling (GradScaler): what the seed's --mixedprec means on CUDA.
        CUDA only: on the CPU one error line (use bf16).

Without --precision, --mixedprec keeps its meaning (fp16 on CUDA, bf16 on the CPU), and no flag
at all is fp32.

Layout and cuDNN benchmark are declared per network by its model file, from measurements on the
device (tools/gpu_check): `CUDA_MEMORY_FORMAT = "channels_last"` where NHWC convolutions are faster
on CUDA, `CUDNN_BENCHMARK = True` where cuDNN's search is faster without a memory blow-up (it took
ECAPA_TDNN to 110 GB). A model file that declares nothing gets contiguous and no benchmark. On the
CPU channels_last is used for every network (runtime.preferred_memory_format)."""

import importlib
from typing import NamedTuple, Optional

from voxtrainer.errors import InputError

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
SWITCHES = ("auto", "on", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class TrainPrecision(NamedTuple):
    name: str
    autocast: Optional[str]  # "bfloat16" / "float16" (torch dtype names), None for none
    loss_scaling: bool       # GradScaler on
    tf32: bool               # TF32 matmuls and cuDNN convolutions (CUDA)

    @property
    def autocast_dtype(self):
        """The torch dtype of autocast, or False (train_step's `mixedprec` argument)."""
        import torch
        return getattr(torch, self.autocast) if self.autocast else False


def precision_named(name):
    return {"fp32": TrainPrecision("fp32", None, False, False),
            "tf32": TrainPrecision("tf32", None, False, True),
            "bf16": TrainPrecision("bf16", "bfloat16", False, False),
            "fp16": TrainPrecision("fp16", "float16", True, False)}[name]


def resolve_precision(requested, mixedprec, device_type, bf16_native=True):
    """(TrainPrecision, note or None) for --precision `requested` (None when not given) and
    --mixedprec on a device type. InputError (one line) for a combination that cannot run."""
    mixed_meaning = "fp16" if device_type == "cuda" else "bf16"
    if requested is None:
        requested = mixed_meaning if mixedprec else "fp32"
    elif mixedprec and requested != mixed_meaning:
        raise InputError("--mixedprec means --precision %s on %s: give --precision %s alone" % (
            mixed_meaning, device_type.upper(), requested))
    note = None
    if device_type != "cuda":
        if requested == "fp16":
            raise InputError("--precision fp16 (autocast with loss scaling) is a CUDA mode; on the CPU use "
                             "--precision bf16")
        if requested == "tf32":
            note = "--precision tf32 does not apply on the CPU (TF32 is a CUDA tensor-core format): fp32 is used"
            requested = "fp32"
    if requested == "bf16" and not bf16_native and device_type == "cuda":
        raise InputError("--precision bf16: this CUDA device does not support bf16; use --precision fp16")
    return precision_named(requested), note


def apply_backend_settings(precision, device_type):
    """TF32 on or off for CUDA matmuls and cuDNN convolutions, as the precision says (nothing on
    the CPU, where TF32 does not exist)."""
    if device_type != "cuda":
        return
    import torch
    torch.backends.cuda.matmul.allow_tf32 = precision.tf32
    torch.backends.cudnn.allow_tf32 = precision.tf32


def model_declaration(model_name, attribute, default):
    """A speed declaration of models/<model_name>.py (e.g. CUDA_MEMORY_FORMAT), `default` when it
    declares none."""
    if not model_name:
        return default
    try:
        module = importlib.import_module("models.%s" % model_name)
    except ImportError:
        return default
    return getattr(module, attribute, default)


def memory_format_for(model_name, device_type, requested="auto"):
    """The torch memory format of the network's weights and activations: --memory_format, or
    (auto) channels_last on the CPU, the model file's CUDA_MEMORY_FORMAT on CUDA."""
    import torch
    if requested == "auto":
        if device_type == "cpu":
            requested = "channels_last"
        else:
            requested = model_declaration(model_name, "CUDA_MEMORY_FORMAT", "contiguous")
    if requested not in MEMORY_FORMATS[1:]:
        raise InputError("models/%s.py: CUDA_MEMORY_FORMAT %r: use channels_last or contiguous" % (
            model_name, requested))
    return torch.channels_last if requested == "channels_last" else torch.contiguous_format


def cudnn_benchmark_for(model_name, device_type, requested="auto"):
    """Whether cuDNN searches its fastest algorithms (--cudnn_benchmark, or the model file's
    CUDNN_BENCHMARK; off by default). Returns (on, note or None); on the CPU always off."""
    if device_type != "cuda":
        note = "--cudnn_benchmark on does not apply on the CPU (cuDNN is CUDA's)" if requested == "on" else None
        return False, note
    if requested == "auto":
        return bool(model_declaration(model_name, "CUDNN_BENCHMARK", False)), None
    return requested == "on", None


def apply_cudnn_benchmark(on, device_type):
    if device_type == "cuda":
        import torch
        torch.backends.cudnn.benchmark = on


class SpeedSettings(NamedTuple):
    precision: TrainPrecision
    memory_format: object  # a torch memory format
    cudnn_benchmark: bool
    notes: tuple           # lines to say once (options that do not apply here)


def speed_settings(model_name, device, requested_precision, mixedprec, memory_format, cudnn_benchmark,
                   compile_mode="default", bf16_native=True):
    """The settings of a run on `device` from its flags, applied to torch's backends (TF32, cuDNN
    benchmark). `bf16_native`: whether the device computes bf16 (inference.bf16_native). InputError
    for a combination that cannot run."""
    device_type = device.type
    precision, precision_note = resolve_precision(requested_precision, mixedprec, device_type, bf16_native)
    benchmark, benchmark_note = cudnn_benchmark_for(model_name, device_type, cudnn_benchmark)
    apply_backend_settings(precision, device_type)
    apply_cudnn_benchmark(benchmark, device_type)
    notes = tuple(note for note in (precision_note, benchmark_note, compile_mode_note(compile_mode, device_type))
                  if note)
    return SpeedSettings(precision, memory_format_for(model_name, device_type, memory_format), benchmark, notes)


def compile_mode_note(mode, device_type):
    """One line when --compile_mode asks for CUDA graphs on the CPU (None otherwise)."""
    if device_type != "cuda" and mode in ("reduce-overhead", "max-autotune"):
        return "--compile_mode %s: CUDA graphs do not apply on the CPU; the step is compiled without them" % mode
    return None


def fused_optimizer(precision, device_type):
    """Whether the optimizer runs its fused CUDA kernel: on CUDA under tf32/bf16/fp16, whose numbers
    differ from fp32 anyway; fp32 keeps the multi-tensor (foreach) kernels, which round as the
    seed's per-parameter loop."""
    return device_type == "cuda" and precision.name != "fp32"
