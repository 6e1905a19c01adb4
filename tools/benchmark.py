"""Where training and evaluation time goes: one JSON line per measurement.

    python -m tools.benchmark                  # CPU (or CUDA when present), batch 64
    python -m tools.benchmark --quick          # smoke run: batch 16, one timed step, 100 test trials
    python -m tools.benchmark --device cuda --models ResNetSE34L,VGGVox,ResNetSE34 --output bench.jsonl

Run from the repository root. Measurements (the `measurement` field of each line):

  device              CPU model / GPU name, torch version, threads, bf16 support, load average
  matmul_peak         best large-matmul FLOP/s on this device, fp32 and the --mixedprec dtype
  train_step          optimisation steps through the trainer's own voxtrainer.training.step.train_step
                      (SpeakerNet.forward with angleproto, backward, Adam, GradScaler/autocast under
                      --mixedprec), each batch moved to the device and its loss read back as the
                      trainer's epoch loop does, on a batch of `--batch_size` utterances =
                      batch_size/2 speakers x 2 utterances (the seed's nPerSpeaker) x 200 frames
                      (32240 samples); utterances/s, FLOPs of the step (torch.utils.flop_counter),
                      achieved FLOP/s and the fraction of matmul_peak
  train_step_profile  the same steps split into front end, trunk, pooling+projection, loss, backward,
                      optimizer (wall time, by hooks on the real modules and on the optimizer: the
                      step itself is not changed)
  train_loader        voxtrainer.reading.datasets.make_train_loader on the demo train list with 0, 1, 2 workers
  eval                voxtrainer.scoring.evaluation.evaluate_list, the trainer's evaluation (batched crops,
                      loader workers, vectorised scoring), and a naive baseline (one file per forward
                      pass, a Python loop over trials as the 2020 code did) on the demo test list;
                      files/s embedded, trials/s scored
  eval_speedup        baseline time / evaluate_list time, and the largest score difference
  summary             total wall time and the targets of the performance issue, met or not

Timings are wall-clock (on CUDA, synchronised). On a shared machine other processes steal cores:
`cpu_share` (process CPU seconds / wall seconds) and `loadavg` in each line show how much of the
machine the run had, and `utt_per_cpu_s` (CPU train steps) is the rate per busy core, which
contention hardly changes. Measured figures belong in the README's performance section.
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time

from tools.common import build_net, cpu_seconds, take_step  # first: sets OMP_WAIT_POLICY before torch

import numpy  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from voxtrainer.reading.audio import loadWAV  # noqa: E402
from voxtrainer.data.demo import DemoSet, make_demo_set  # noqa: E402
from voxtrainer.reading.datasets import make_train_loader  # noqa: E402
from voxtrainer.errors import InputError  # noqa: E402
from voxtrainer.scoring.evaluation import evaluate_list  # noqa: E402
from voxtrainer.reading.lists import TrainList  # noqa: E402
from voxtrainer.scoring.metrics import equal_error_rate  # noqa: E402
from voxtrainer.plugins import load_plugin  # noqa: E402
from voxtrainer.runtime import (autocast_dtype, cpu_flags, cpu_has_native_bf16, preferred_memory_format,  # noqa: E402
                                resolve_device)

MAX_FRAMES = 200  # the seed's training crop
NPERSPEAKER = 2  # the seed's utterances per speaker for angleproto
TARGETS = {  # the performance issue's goals: utterances/s at batch 64 x 200 frames on a 2-core CPU
    ("ResNetSE34L", "fp32"): 80, ("ResNetSE34L", "mixedprec"): 130,
    ("VGGVox", "fp32"): 65, ("VGGVox", "mixedprec"): 140,
}


def build_parser():
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__, formatter_class=Formatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch_size", type=int, default=64,
                        help="utterances per train step (batch_size/2 speakers x 2 utterances)")
    parser.add_argument("--models", default="ResNetSE34L,VGGVox", help="comma-separated models to time")
    parser.add_argument("--precisions", default="fp32,mixedprec", help="fp32 and/or mixedprec")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 16, one timed step, a short loader run, 100 test trials")
    parser.add_argument("--demo_path", default=None,
                        help="a demo set (the folder holding train_list.txt, or its parent); "
                             "default: generate one into a temporary folder with "
                             "voxtrainer.data.demo.make_demo_set")
    parser.add_argument("--output", default=None, help="also append the JSON lines to this file")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads; none: torch's default")
    parser.add_argument("--memory_format", default="auto", choices=["auto", "channels_last", "contiguous"],
                        help="layout of the conv weights; auto = what trainSpeakerNet.py uses on this device")
    parser.add_argument("--eval_model", default="ResNetSE34L", help="model of the evaluation measurement")
    parser.add_argument("--eval_frames", type=int, default=MAX_FRAMES,
                        help="eval crop length (trainSpeakerNet.py's default: --max_frames)")
    parser.add_argument("--eval_workers", type=int, default=2, help="loader workers of evaluate_list")
    parser.add_argument("--loader_workers", default="0,1,2", help="worker counts of the loader measurement")
    parser.add_argument("--min_step_time", type=float, default=6.0,
                        help="time train steps until this many seconds have passed (at least --min_steps)")
    parser.add_argument("--min_steps", type=int, default=2, help="timed train steps at least (after 1 warm-up)")
    parser.add_argument("--max_steps", type=int, default=5, help="timed train steps at most")
    parser.add_argument("--step_budget_s", type=float, default=20.0,
                        help="seconds of timed train steps at most per model and precision; a warm-up step "
                             "longer than this is the measurement itself")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: train,loader,eval")
    return parser


# ---------------------------------------------------------------------------------------------
# Reporting

class Reporter:
    def __init__(self, output, device):
        self.output, self.device = output, device
        self.summary_device = None
        self.lines = []

    def emit(self, measurement, **fields):
        record = {"measurement": measurement}
        if self.summary_device:
            record["device"] = self.summary_device
        record.update(fields)
        record["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        line = json.dumps(record, sort_keys=False)
        print(line, flush=True)
        self.lines.append(record)
        if self.output:
            with open(self.output, "a") as handle:
                handle.write(line + "\n")
        return record


class Clock:
    """Wall time and this process's CPU time; on CUDA, synchronised."""

    def __init__(self, device):
        self.device = device

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def now(self):
        self.sync()
        return time.perf_counter()

    @contextlib.contextmanager
    def span(self):
        result = {}
        self.sync()
        wall, cpu = time.perf_counter(), cpu_seconds()
        yield result
        self.sync()
        result["wall"] = time.perf_counter() - wall
        result["cpu"] = cpu_seconds() - cpu


def cpu_share(span):
    return round(span["cpu"] / max(span["wall"], 1e-9), 2)


# ---------------------------------------------------------------------------------------------
# Device

def cpu_model_name():
    try:
        with open("/proc/cpuinfo") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        name = fields.get("model name\t", "").strip() or platform.processor()
        family, model = fields.get("cpu family\t", "").strip(), fields.get("model\t\t", "").strip()
        return name, ("family %s model %s" % (family, model)) if family else ""
    except OSError:
        return platform.processor() or "unknown CPU", ""


def describe_device(device):
    name, family = cpu_model_name()
    flags = cpu_flags()
    info = {
        "type": device.type,
        "cpu": name,
        "cpu_id": family,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_flags": sorted(flags & {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"}),
        "mkldnn_bf16_native": cpu_has_native_bf16(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2 ** 30, 1),
                    gpu_capability="%d.%d" % (props.major, props.minor), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
        short = "%s (CUDA %s), torch %s" % (props.name, torch.version.cuda, torch.__version__)
    else:
        short = "%s %s, %d torch threads, %s, torch %s" % (name, family, torch.get_num_threads(),
                                                          info["cpu_capability"], torch.__version__)
    return info, short


# ---------------------------------------------------------------------------------------------
# Memory

class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or this process's peak RSS (VmHWM, reset
    through /proc/self/clear_refs where the kernel allows it)."""

    def __init__(self, device):
        self.device = device

    def reset(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.rss_reset = True
        except OSError:
            self.rss_reset = False

    def read(self):
        if self.device.type == "cuda":
            return {"peak_cuda_mb": round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20, 1)}
        peak = process_memory_mb("VmHWM")
        if peak is None:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {"peak_rss_mb": round(peak, 1)}
        if not getattr(self, "rss_reset", False):
            result["peak_rss_note"] = "process lifetime peak (clear_refs unavailable)"
        return result


def process_memory_mb(key):
    """A memory line of /proc/self/status (VmRSS, VmHWM, ...) in MB, or None where there is none."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name == key:
                    return round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------------------
# Matmul peak

def matmul_peak(device, dtype, clock, budget_s=3.0):
    """Best FLOP/s of square matmuls (torch.mm and F.linear, whichever is faster), growing n
    until one product takes >= 50 ms or n reaches the device's cap."""
    cap = 8192 if device.type == "cuda" else 2048
    best = {"gflops": 0.0}
    n = 256
    started = time.perf_counter()
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for name, fn in (("mm", lambda: torch.mm(a, b)), ("linear", lambda: F.linear(a, b))):
            fn()
            times = []
            for _ in range(5):
                t0 = clock.now()
                fn()
                times.append(clock.now() - t0)
                if sum(times) > budget_s / 4:
                    break
            gflops = 2 * n ** 3 / min(times) / 1e9
            if gflops > best["gflops"]:
                best = {"gflops": round(gflops, 2), "n": n, "op": name}
            last = min(times)
        if n >= cap or last >= 0.05 or time.perf_counter() - started > budget_s:
            return best
        n *= 2


# ---------------------------------------------------------------------------------------------
# Train step

@contextlib.contextmanager
def timed_method(obj, name, clock, record):
    """Within the block, every call of `obj.name` is timed (clock.span) by an attribute of this one
    instance, the class untouched: `record(span, result)` after each call."""
    original = getattr(obj, name)

    def timed(*args, **kwargs):
        with clock.span() as span:
            result = original(*args, **kwargs)
        record(span, result)
        return result
    setattr(obj, name, timed)
    try:
        yield
    finally:
        delattr(obj, name)


class StageTimer:
    """Where the wall time of voxtrainer.training.step.train_step goes, seen from outside the step.

    Inside SpeakerNet.forward, forward hooks on the real modules time the front end (`torchfb`),
    the embedding model (`__S__`) and the loss (`__L__`); pooling+projection is the model's
    `embed`, timed through an attribute of this instance. Across the step, which `step()` brackets:
    forward runs from its start (moving the batch, zero_grad) to the end of SpeakerNet.forward (a
    forward hook on the net), optimizer from the optimizer's step pre-hook to the end of the step
    (GradScaler.update and reading the loss back included), and backward is what lies between (the
    finiteness check, loss scaling, backward). Every mark synchronises CUDA."""

    def __init__(self, net, optimizer, clock):
        self.clock, self.seconds, self.marks = clock, {}, {}
        self.stack = contextlib.ExitStack()
        model = net.__S__
        for name, module in (("frontend", model.torchfb), ("model", model), ("loss", net.__L__)):
            self._hold(module.register_forward_pre_hook(self._mark(name)))
            self._hold(module.register_forward_hook(self._stop(name)))
        self._hold(net.register_forward_hook(self._mark("forward_end")))
        self._hold(optimizer.register_step_pre_hook(self._mark("optimizer_start")))
        self.stack.enter_context(timed_method(model, "embed", clock,
                                              lambda span, _: self.add("pool_fc", span["wall"])))

    def _hold(self, handle):
        self.stack.callback(handle.remove)

    def add(self, name, seconds):
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def _mark(self, name):
        def hook(*_):
            self.marks[name] = self.clock.now()
        return hook

    def _stop(self, name):
        def hook(module, inputs, output):
            self.add(name, self.clock.now() - self.marks.pop(name))
        return hook

    @contextlib.contextmanager
    def step(self):
        start = self.clock.now()
        yield
        end = self.clock.now()
        forward_end = self.marks.pop("forward_end")
        # GradScaler skips optimizer.step() after an overflow (fp16 on CUDA): all of it is backward then.
        optimizer_start = self.marks.pop("optimizer_start", end)
        self.add("forward", forward_end - start)
        self.add("backward", optimizer_start - forward_end)
        self.add("optimizer", end - optimizer_start)

    def close(self):
        self.stack.close()


def measure_train_step(model, precision, batch, device, memory_format, peaks, args, report, clock):
    data, label = batch
    mixedprec = precision == "mixedprec"
    net = build_net(model, device=device, memory_format=memory_format)
    optimizer = load_plugin("optimizer", "adam")(net.parameters(), lr=0.001)  # the trainer's default
    scaler = torch.amp.GradScaler(device.type, enabled=mixedprec and device.type == "cuda")
    memory = PeakMemory(device)
    rss_before = process_memory_mb("VmRSS") if device.type == "cpu" else None
    memory.reset()
    timer = StageTimer(net, optimizer, clock)

    def step():
        with timer.step():
            return take_step(net, data, label, optimizer, scaler, mixedprec)

    # Warm-up step (oneDNN/cuDNN primitive creation), counting the step's FLOPs.
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with clock.span() as warm:
        with counter:
            losses = [step()]
    flops = counter.get_total_flops()
    by_op = {str(op): flop for op, flop in counter.get_flop_counts().get("Global", {}).items()}

    # Timed steps: at least min_steps and min_step_time, at most max_steps and step_budget_s.
    # A configuration whose warm-up step alone exceeds the budget (bf16 on a CPU without native
    # bf16, say) is reported from that step, flagged.
    min_steps = 1 if args.quick else args.min_steps
    max_steps = 1 if args.quick else args.max_steps
    times, cpu_times = [], []
    from_warmup = warm["wall"] > args.step_budget_s
    with clock.span() as total:
        if not from_warmup:
            timer.seconds.clear()
            while len(times) < max_steps:
                if len(times) >= min_steps and sum(times) >= args.min_step_time:
                    break
                if times and sum(times) + statistics.median(times) > args.step_budget_s:
                    break
                t0, c0 = clock.now(), cpu_seconds()
                losses.append(step())
                times.append(clock.now() - t0)
                cpu_times.append(cpu_seconds() - c0)
    timer.close()
    mem = memory.read()
    if from_warmup:
        times, cpu_times, total = [warm["wall"]], [warm["cpu"]], warm

    utterances = data.shape[0] * data.shape[1]
    step_s = statistics.median(times)
    achieved = flops / step_s
    peak = peaks["fp32" if not mixedprec else "mixedprec"]
    record = {
        "model": model, "precision": precision if not mixedprec else "mixedprec(%s)" % str(
            autocast_dtype(device)).replace("torch.", ""),
        "batch_utterances": utterances, "speakers": data.shape[0], "utterances_per_speaker": data.shape[1],
        "frames": MAX_FRAMES, "samples": data.shape[2], "memory_format": str(memory_format).replace("torch.", ""),
        "steps_timed": 0 if from_warmup else len(times), "step_s": [round(t, 3) for t in times],
        "step_s_median": round(step_s, 3),
        "utt_per_s": round(utterances / step_s, 2), "warmup_s": round(warm["wall"], 2),
        "gflop_per_step": round(flops / 1e9, 2), "gflop_per_utt": round(flops / 1e9 / utterances, 3),
        "gflop_by_op": {op: round(f / 1e9, 2) for op, f in sorted(by_op.items())},
        "achieved_gflops": round(achieved / 1e9, 2), "matmul_peak_gflops": peak["gflops"],
        "fraction_of_matmul_peak": round(achieved / 1e9 / peak["gflops"], 3) if peak["gflops"] else None,
        "loss_finite": all(numpy.isfinite(losses)), "cpu_share": cpu_share(total),
        # CPU seconds the step's threads spent working (they sleep, not spin, at barriers under
        # OMP_WAIT_POLICY=PASSIVE): a rate per busy core that other processes hardly disturb.
        "utt_per_cpu_s": round(utterances / statistics.median(cpu_times), 2) if device.type == "cpu" else None,
    }
    if from_warmup:
        record["note"] = ("the warm-up step took %.0f s > --step_budget_s: reported from it (it includes "
                          "primitive creation and FLOP counting, so it slightly understates the rate)" % warm["wall"])
    if mixedprec:
        record["fraction_of_fp32_matmul_peak"] = round(achieved / 1e9 / peaks["fp32"]["gflops"], 3)
    if rss_before is not None:
        record["rss_before_mb"] = rss_before
    record.update(mem)
    target = TARGETS.get((model, precision))
    if target and utterances == 64 and device.type == "cpu":
        record["target_utt_per_s"] = target
    report.emit("train_step", **record)

    steps = len(times)  # the warm-up step's stages when it is the measurement
    seconds = {k: v / steps for k, v in timer.seconds.items()}
    stages = {
        "frontend": seconds.get("frontend", 0.0),
        "trunk": seconds.get("model", 0.0) - seconds.get("frontend", 0.0) - seconds.get("pool_fc", 0.0),
        "pool_fc": seconds.get("pool_fc", 0.0),
        "loss": seconds.get("loss", 0.0),
    }
    stages["forward_other"] = seconds.get("forward", 0.0) - sum(stages.values())
    stages["backward"] = seconds.get("backward", 0.0)
    stages["optimizer"] = seconds.get("optimizer", 0.0)
    step_total = sum(stages.values())
    report.emit("train_step_profile", model=model, precision=record["precision"],
                seconds_per_step={k: round(v, 4) for k, v in stages.items()},
                fraction={k: round(v / step_total, 3) for k, v in stages.items()},
                note="voxtrainer.training.step.train_step, timed from outside: forward stages by hooks on the real "
                     "modules (trunk = model - front end - pooling/fc); forward ends at SpeakerNet.forward's "
                     "forward hook, optimizer runs from the optimizer's step pre-hook to the end of the step, "
                     "backward is what lies between")
    del net, optimizer
    return record


# ---------------------------------------------------------------------------------------------
# Loader

def measure_loader(demo, speakers, workers, args, report, min_batches, min_time):
    train_list = TrainList(demo.train_list, demo.train_path)
    loader, sampler = make_train_loader(train_list, MAX_FRAMES, NPERSPEAKER, 100, speakers, workers, seed=0)
    utterances, batches, epoch = 0, 0, 1
    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    first_batch_s, steady_start = None, None
    while True:
        sampler.set_epoch(epoch)
        for data, _ in loader:
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - t0
                steady_start = time.perf_counter()
            else:
                utterances += data.shape[0] * data.shape[1]
                batches += 1
        epoch += 1
        elapsed = time.perf_counter() - steady_start
        if batches >= min_batches and elapsed >= min_time:
            break
    elapsed = time.perf_counter() - steady_start
    del loader
    return report.emit("train_loader", workers=workers, batch_utterances=speakers * NPERSPEAKER,
                       frames=MAX_FRAMES, batches=batches, epochs=epoch - 1, batches_per_epoch=len(sampler),
                       utt_per_s=round(utterances / elapsed, 1), first_batch_s=round(first_batch_s, 3),
                       main_process_cpu_s=round(cpu_seconds() - cpu0, 2),
                       note="steady state: utterances after the first batch / time after the first batch")


# ---------------------------------------------------------------------------------------------
# Evaluation

def naive_evaluate(net, test_list, test_path, eval_frames, num_eval, device, clock):
    """The 2020 protocol written as the 2020 code did it: each unique file embedded alone (its
    num_eval crops in one forward pass), then a Python loop over trials. Under torch.no_grad, which
    some 2020 versions lacked: without it this baseline would only be slower."""
    lines = []
    with open(test_list) as handle:
        for line in handle:
            parts = line.split()
            if parts:
                lines.append(parts if len(parts) == 3 else [0] + parts)
    files = sorted({name for parts in lines for name in parts[1:]})
    net.eval()
    feats = {}
    with torch.no_grad():
        with clock.span() as embed:
            for name in files:
                crops = loadWAV(os.path.join(test_path, name), eval_frames, evalmode=True, num_eval=num_eval)
                feats[name] = net.__S__(crops.to(device)).detach().cpu()
        scores, labels = [], []
        with clock.span() as score:
            for parts in lines:
                ref, com = feats[parts[1]].to(device), feats[parts[2]].to(device)
                if net.test_normalize:
                    ref, com = F.normalize(ref, p=2, dim=1), F.normalize(com, p=2, dim=1)
                # The 2020 line was F.pairwise_distance(ref.unsqueeze(-1), com.unsqueeze(-1).transpose(0, 2)):
                # the torch of 2020 took that norm over dim 1 (the embedding); torch >= 1.12 takes it
                # over the last dim, so the same call now means something else. Written out:
                dist = torch.norm(ref.unsqueeze(-1) - com.unsqueeze(-1).transpose(0, 2) + 1e-6, p=2, dim=1)
                scores.append(-1 * numpy.mean(dist.detach().cpu().numpy()))
                labels.append(int(parts[0]))
    return scores, labels, len(files), embed, score


def count_lines(path):
    """Non-empty lines of a list file."""
    with open(path) as handle:
        return sum(1 for line in handle if line.strip())


def emit_eval(report, method, args, memory_format, files, trials, workers, embed_s, score_s, total, eer, mem):
    return report.emit("eval", method=method, model=args.eval_model, files=files, trials=trials,
                       eval_frames=args.eval_frames, num_eval=10, workers=workers,
                       memory_format=str(memory_format).replace("torch.", ""),
                       embed_s=round(embed_s, 3), files_per_s=round(files / embed_s, 2),
                       score_s=round(score_s, 4), trials_per_s=round(trials / max(score_s, 1e-9), 1),
                       total_s=round(total["wall"], 3), eer=round(float(eer), 4), cpu_share=cpu_share(total), **mem)


def measure_eval(demo, test_list, device, memory_format, args, report, clock):
    """voxtrainer.scoring.evaluation.evaluate_list, the trainer's evaluation, as it is (its embedding pass,
    SpeakerNet.embed_files, timed through an attribute of this net; scoring is the rest), against
    naive_evaluate, the 2020 loop, on the same net and list."""
    net = build_net(args.eval_model, device=device, memory_format=memory_format)
    net.eval()
    n_trials = count_lines(test_list)
    memory = PeakMemory(device)
    embedding = {}

    def record_embedding(span, embeddings):
        embedding.update(span=span, files=embeddings.shape[0])

    # Warm-up on one file (primitive creation) so neither method pays it.
    with open(test_list) as handle:
        first_file = handle.readline().split()[1]
    with torch.no_grad():
        net.__S__(loadWAV(os.path.join(demo.test_path, first_file), args.eval_frames, evalmode=True,
                          num_eval=10).to(device))
    memory.reset()
    with timed_method(net, "embed_files", clock, record_embedding), clock.span() as total:
        evaluation = evaluate_list(net, test_list, demo.test_path, args.eval_frames, num_eval=10,
                                   num_workers=args.eval_workers, progress=False)
    mem = memory.read()
    embed_s = embedding["span"]["wall"]
    fast = emit_eval(report, "evaluate_list", args, memory_format, embedding["files"], n_trials, args.eval_workers,
                     embed_s, total["wall"] - embed_s, total, evaluation.eer, mem)

    memory.reset()
    with clock.span() as total:
        naive_scores, naive_labels, n_files, embed, score = naive_evaluate(
            net, test_list, demo.test_path, args.eval_frames, 10, device, clock)
    mem = memory.read()
    naive = emit_eval(report, "naive (one file per forward, per-trial Python loop)", args, memory_format, n_files,
                      n_trials, 0, embed["wall"], score["wall"], total, equal_error_rate(naive_scores, naive_labels),
                      mem)
    scores = numpy.asarray(evaluation.scores)
    report.emit("eval_speedup", speedup=round(naive["total_s"] / fast["total_s"], 2),
                embed_speedup=round(naive["embed_s"] / fast["embed_s"], 2),
                score_speedup=round(naive["score_s"] / max(fast["score_s"], 1e-9), 1),
                max_abs_score_diff=float(numpy.max(numpy.abs(scores - numpy.asarray(naive_scores)))),
                same_eer=fast["eer"] == naive["eer"], target_speedup=2.0)


# ---------------------------------------------------------------------------------------------

def find_demo(path):
    """The demo set at `path` (the folder holding train_list.txt, or its parent)."""
    for root in (path, os.path.join(path, "demo")):
        if os.path.isfile(os.path.join(root, "train_list.txt")):
            return DemoSet(train_list=os.path.join(root, "train_list.txt"),
                           test_list=os.path.join(root, "test_list.txt"),
                           train_path=os.path.join(root, "train"), test_path=os.path.join(root, "test"))
    raise SystemExit("error: %s: no demo set (train_list.txt) there or in %s/demo" % (path, path))


def main(argv=None):
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except InputError as error:
        raise SystemExit("error: %s" % error)
    if args.quick:
        args.batch_size = min(args.batch_size, 16)
    if args.batch_size % NPERSPEAKER:
        raise SystemExit("error: --batch_size must be a multiple of %d (utterances per speaker)" % NPERSPEAKER)
    speakers = args.batch_size // NPERSPEAKER
    memory_format = {"auto": preferred_memory_format(device), "channels_last": torch.channels_last,
                     "contiguous": torch.contiguous_format}[args.memory_format]
    models = [m for m in args.models.split(",") if m]
    precisions = [p for p in args.precisions.split(",") if p]
    skip = set(filter(None, args.skip.split(",")))
    clock = Clock(device)

    report = Reporter(args.output, device)
    info, short = describe_device(device)
    report.emit("device", **info)
    report.summary_device = short

    tmp = None
    with clock.span() as demo_span:
        if args.demo_path:
            demo = find_demo(args.demo_path)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="benchmark_demo_")
            # 480 train and 120 test files (600 trials), the sizes the README's figures were
            # measured with; loader throughput does not depend on the list's length.
            demo = make_demo_set(tmp.name, n_train_speakers=60, n_test_speakers=20, utts_per_speaker=8,
                                 verbose=False)
    report.emit("demo_set", path=os.path.dirname(demo.train_list), generated=not args.demo_path,
                seconds=round(demo_span["wall"], 1),
                train_files=count_lines(demo.train_list), test_trials=count_lines(demo.test_list))

    peaks = {"fp32": matmul_peak(device, torch.float32, clock)}
    report.emit("matmul_peak", dtype="float32", **peaks["fp32"])
    if "mixedprec" in precisions and "train" not in skip:
        peaks["mixedprec"] = matmul_peak(device, autocast_dtype(device), clock)
        report.emit("matmul_peak", dtype=str(autocast_dtype(device)).replace("torch.", ""), **peaks["mixedprec"])

    train_rates = {}
    if "train" not in skip:
        train_list = TrainList(demo.train_list, demo.train_path)
        loader, _ = make_train_loader(train_list, MAX_FRAMES, NPERSPEAKER, 100, speakers, 0, seed=0)
        batch = next(iter(loader))
        del loader
        for model in models:
            for precision in precisions:
                record = measure_train_step(model, precision, batch, device, memory_format, peaks, args, report,
                                            clock)
                train_rates[(model, precision)] = record["utt_per_s"]

    loader_rates = {}
    if "loader" not in skip:
        for workers in [int(w) for w in args.loader_workers.split(",") if w]:
            record = measure_loader(demo, speakers, workers, args, report,
                                    min_batches=4 if args.quick else 12, min_time=1.0 if args.quick else 4.0)
            loader_rates[workers] = record["utt_per_s"]

    if "eval" not in skip:
        with tempfile.TemporaryDirectory(prefix="benchmark_quick_") as quick_dir:
            test_list = demo.test_list
            if args.quick:
                test_list = os.path.join(quick_dir, "test_list.txt")
                with open(demo.test_list) as source, open(test_list, "w") as target:
                    target.writelines(source.readlines()[:100])
            measure_eval(demo, test_list, device, memory_format, args, report, clock)
    speedup = next((r["speedup"] for r in report.lines if r["measurement"] == "eval_speedup"), None)

    targets = {}
    if device.type == "cpu" and args.batch_size == 64:
        for (model, precision), target in TARGETS.items():
            if (model, precision) in train_rates:
                targets["%s %s >= %d utt/s" % (model, precision, target)] = train_rates[(model, precision)] >= target
    reference = train_rates.get(("ResNetSE34L", "fp32"))
    if reference and 2 in loader_rates:
        targets["loader(2 workers) >= 10x ResNetSE34L fp32 step"] = loader_rates[2] >= 10 * reference
    if speedup is not None:
        targets["evaluate_list >= 2x naive"] = speedup >= 2.0
    report.emit("summary", total_s=round(time.perf_counter() - started, 1), batch_utterances=args.batch_size,
                train_utt_per_s={"%s %s" % k: v for k, v in train_rates.items()},
                loader_utt_per_s=loader_rates,
                loader_over_train=round(loader_rates[2] / reference, 1) if reference and 2 in loader_rates else None,
                eval_speedup=speedup, targets_met=targets)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
