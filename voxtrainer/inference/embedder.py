"""The one way crops become embeddings (voxtrainer.inference.embedding uses it for crops, files and
waveforms): an Embedder runs a net's embedding network `__S__` as the fastest callable that gives
the plain eager numbers for the net's device and evaluation precision.

On the CPU that callable is a frozen TorchScript graph of `__S__` (frozen_graph: the weights baked
in as constants, the BatchNorms that follow a convolution folded into it, no Python module calls),
run with the profiling executor's optimisation off: the graph is the same for every input shape,
and the profiling executor would otherwise re-profile and re-specialise it for every new
whole-file length (measured: 1.07x instead of 1.36x over eager on 40 distinct lengths). Its
embeddings differ from eager by rounding only (about 1e-6 relative, measured on ResNetSE34L,
VGGVox and ResNetSE34 at 1-10 s, batches of 1-20; TOLERANCE is the promise). It costs 0.05-0.25 s
to make (plus a check), so it is made for passes over files, once per pass, from a private copy of
the weights of that moment: nothing is cached on the network, and no graph outlives the weights
it was made from. Elsewhere (CUDA, where it is not measured yet; a net in training mode; single
embeddings) the callable is the eager network.

Safety: the graph is checked against eager on an input of another batch size and length when it
is made; a graph that cannot be made, fails that check or raises on an input that eager embeds
is dropped for eager, with one warning line: an optimisation never stops an evaluation.

Precision: --eval_precision bf16 runs the network under bf16 autocast (the front ends stay float32),
only where bf16 is native (a CPU with AVX-512 BF16 or AMX, a CUDA device that supports it); the
scores then differ from fp32 (BF16_SCORE_DIFFERENCE, measured)."""

import copy
import math
import warnings

import torch
import torch.nn.functional as F

from voxtrainer import log
from voxtrainer.errors import InputError, first_line
from voxtrainer.runtime import cpu_has_native_bf16

PRECISIONS = ("fp32", "bf16", "fp16")  # fp16: CUDA only
TOLERANCE = 1e-5            # relative L2 difference per embedding the fast graph may have from eager
BF16_CHECK_TOLERANCE = 0.1  # bf16 graph vs fp32 eager at build: catches a broken graph, not rounding
# Measured with ResNetSE34L trained on the demo set (1200 trials; whole files, 1 s and 3 s crops) and
# with the original's checkpoint on the test fixture: embeddings 0.4-1.2% (relative L2) from fp32.
BF16_SCORE_DIFFERENCE = ("up to ~0.08 (mean ~0.01; scores lie in [-2, 0]) and the EER by up to ~0.3 points "
                         "(measured on the demo set)")
EXAMPLE_SAMPLES = 16240     # a 1 s crop (crop_samples(100)): tracing is cheap and every model accepts it
CHECK_SAMPLES = 24240 + 321  # another length (and batch size) than the trace's, for the build check


# ---------------------------------------------------------------------------------------------
# Precision

def bf16_native(device):
    """Whether `device` computes bf16 natively (else bf16 autocast is emulated and slow)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def check_precision(precision, device):
    """InputError (one line) for a precision this device cannot run natively."""
    if precision not in PRECISIONS:
        raise InputError("--eval_precision %s: use one of %s" % (precision, ", ".join(PRECISIONS)))
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise InputError("--eval_precision fp16 is a CUDA mode (fp16 autocast); on the CPU use bf16 or fp32")
    if precision == "bf16" and not bf16_native(device):
        where = ("this CPU has no native bf16 (oneDNN needs AVX-512 BF16 or AMX)" if torch.device(device).type == "cpu"
                 else "this %s device does not support bf16" % torch.device(device).type)
        raise InputError("--eval_precision bf16: %s, so bf16 would be emulated and slower than fp32; use "
                         "--eval_precision fp32" % where)


def precision_notice(precision):
    """The line said when embeddings are computed in bf16 or fp16 (None for fp32)."""
    if precision == "fp16":
        return ("--eval_precision fp16: the embedding network runs in float16 autocast (CUDA): faster, but the "
                "scores change (not measured here; tools/gpu_check compares them with fp32)")
    if precision != "bf16":
        return None
    return ("--eval_precision bf16: the embedding network runs in bfloat16 (front end in float32): faster, but "
            "the scores change: they differ from fp32 by %s" % BF16_SCORE_DIFFERENCE)


def announce_precision(precision, device):
    """Check `precision` for `device` and say it when it changes the scores (bf16)."""
    check_precision(precision, device)
    notice = precision_notice(precision)
    if notice:
        log.info(notice)


def autocast(device, precision):
    """The autocast context of a precision: bf16 or fp16, or explicitly none (a caller's autocast
    does not leak into fp32 embeddings)."""
    device_type = torch.device(device).type
    if precision in ("bf16", "fp16"):
        return torch.autocast(device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return torch.autocast(device_type, enabled=False)


# ---------------------------------------------------------------------------------------------
# Identical crops

def unique_crops(crops):
    """(crops, samples) -> (unique crops, index (crops,)) with crops == unique[index]: runs of
    bit-identical consecutive crops (a file no longer than one crop is padded to one crop, and its
    eval crops all start at 0) become one crop, embedded once."""
    if crops.shape[0] < 2:
        return crops, torch.zeros(crops.shape[0], dtype=torch.long)
    new = torch.ones(crops.shape[0], dtype=torch.bool)
    new[1:] = (crops[1:] != crops[:-1]).any(dim=1)
    if bool(new.all()):
        return crops, torch.arange(crops.shape[0])
    return crops[new], torch.cumsum(new.long(), 0) - 1


# ---------------------------------------------------------------------------------------------
# The prepared network

def check_input(device, batch, samples, seed):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, samples, generator=generator) * 3000).to(device)


def relative_l2(ours, reference):
    """Largest L2 difference of an embedding, relative to the reference embedding's norm."""
    ours, reference = ours.double(), reference.double()
    return float(((ours - reference).norm(dim=1) / reference.norm(dim=1).clamp_min(1e-30)).max())


def frozen_graph(network, example, device, precision):
    """`network` (a private copy, no parameter requiring grad) traced as a function, its weights
    baked in as constants, then optimised as torch.jit.freeze optimises a frozen graph (constant
    propagation; BatchNorm after a convolution folded into it, linear weights pre-transposed). The
    function trace costs a fifth of a module trace (torch.jit.trace(module) builds a ScriptModule
    per submodule, about 1 s for the ResNets: too much to repeat at every validation of a training
    run). The passes are the ones torch.jit.freeze runs (torch/jit/_freeze.py); where a torch
    release drops them, building fails and eager does the work."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings, TorchScript deprecation notes
        with torch.no_grad(), autocast(device, precision):
            graph = torch.jit.trace(lambda waveform: network(waveform), example, check_trace=False)
        torch._C._jit_pass_constant_propagation(graph.graph)
        torch._C._jit_pass_optimize_frozen_graph(graph.graph, True)
    return graph


def build_graph(network, device, precision):
    """The fast graph of `network` (a private copy), checked against eager on another batch size and
    length than it was traced with: (graph, None), or (None, why) where that fails."""
    example = check_input(device, 2, EXAMPLE_SAMPLES, seed=0)
    check = check_input(device, 1, CHECK_SAMPLES, seed=1)
    try:
        graph = frozen_graph(network, example, device, precision)
        got = run_graph(graph, check, device, precision)
        with torch.no_grad(), autocast(device, "fp32"):
            expected = network(check).float()
    except Exception as error:  # any failure of the optimisation: eager does the work
        return None, "%s: %s" % (type(error).__name__, first_line(error))
    if not torch.isfinite(expected).all():
        return None, None  # nothing to be equal to: eager does the work, and the caller's check reports
    difference = relative_l2(got, expected)
    limit = TOLERANCE if precision == "fp32" else BF16_CHECK_TOLERANCE
    if not difference <= limit:
        return None, "its embeddings differ from eager by %.2g (relative), more than %g" % (difference, limit)
    return graph, None


def run_graph(graph, crops, device, precision):
    with torch.no_grad(), torch.jit.optimized_execution(False), autocast(device, precision):
        return graph(crops).float()


class Embedder:
    """crops (batch, samples) -> embeddings (batch, nOut), float32 on the net's device, normalised
    when the loss scores normalised embeddings: the fast graph once `build` made one, else eager."""

    def __init__(self, module, normalize, device, precision):
        self.module, self.normalize, self.device, self.precision = module, normalize, device, precision
        self.graph, self.copy, self.why_eager = None, None, "not built"

    def build(self):
        """Make the fast graph from a private copy of the weights (which also records what they
        were); False, with `why_eager`, where that fails."""
        try:
            self.copy = copy.deepcopy(self.module).requires_grad_(False).eval()
        except Exception as error:
            self.why_eager = "cannot copy the network (%s: %s)" % (type(error).__name__, first_line(error))
            return False
        self.graph, self.why_eager = build_graph(self.copy, self.device, self.precision)
        return self.graph is not None

    def eager(self, crops):
        with torch.no_grad(), autocast(self.device, self.precision):
            return self.module(crops).float()

    def __call__(self, crops):
        crops = crops.to(self.device)
        if self.graph is not None:
            try:
                out = run_graph(self.graph, crops, self.device, self.precision)
            except Exception as error:
                out = self.eager(crops)  # raises, keeping the graph, when the input is the problem
                self.graph = None
                log.warning("fast inference graph failed on input %s (%s: %s); embeddings are computed eagerly "
                            "from now on (same numbers, slower)" % (tuple(crops.shape), type(error).__name__,
                                                                    first_line(error)))
        else:
            out = self.eager(crops)
        return F.normalize(out, p=2, dim=1) if self.normalize else out


# ---------------------------------------------------------------------------------------------
# An embedder for a net as it is now

WARNED = set()  # (network class, reason) already said: a run that validates often says it once


def embedder_for(net, fast=True):
    """An Embedder of net's embedding network with its weights, device, mode and evaluation
    precision of now. With `fast`, on the CPU and in eval mode, the fast graph is made from a copy
    of the weights (one warning line, and eager, where that fails): callers make one per pass
    over files, so the graph is never older than the weights it embeds with."""
    embedder = Embedder(net.__S__, net.test_normalize, net.device, net.eval_precision)
    if fast and net.device.type == "cpu" and not net.__S__.training and not embedder.build() and embedder.why_eager:
        said = (type(net.__S__).__name__, embedder.why_eager)
        if said not in WARNED:
            WARNED.add(said)
            log.warning("fast inference graph unavailable (%s); embeddings are computed eagerly (same numbers, "
                        "slower)" % embedder.why_eager)
    return embedder


def loader_processes(device, eval_frames, requested):
    """Audio-reading processes for a pass over files. On the CPU the network costs 40-200 ms a file
    (ResNetSE34L, 2 cores), reading and cutting its crops in this process 0.3 ms (a whole file) or
    2.3 ms (10 crops of 3 s), and receiving them from a loader process costs this process 1 ms: so
    whole files are read here, and crops by one process (more only take cores from the network).
    On a GPU, where the network is fast, the processes asked for."""
    if torch.device(device).type != "cpu":
        return requested
    return 0 if eval_frames == 0 else min(requested, 1)


def prefetch_factor(crops_per_batch, num_workers):
    """Files each loader process keeps ready: together at least one forward pass's worth when every
    file is a single (deduplicated) crop."""
    return max(2, math.ceil(crops_per_batch / max(num_workers, 1)))
