"""The GPU check: one prepared run, for a session that is lent a GPU, of what decides training and
evaluation speed there, in at most 6 minutes on one H200. One JSON line per measurement:

  device       the GPU, CUDA, torch
  train_step   every network (ResNetSE34L and VGGVox in the seed's shape: angleproto, 200 speakers x
               2 x 2 s; ResNet34, ECAPA_TDNN C=512 and each WeSpeaker network whose models/<Name>.py
               exists: aamsoftmax over 5,994 classes, 128 x 2 s) in each variant of
               tools.gpu_check_train.VARIANTS (fp32 contiguous and channels_last, tf32, bf16, fp16 with
               loss scaling, bf16 with cuDNN benchmark, compiled, compiled with CUDA graphs; the
               others in the model file's declared layout): utterances/s and peak GPU memory of the
               trainer's own step. The issue's four networks first (eager, then compiled), then
               the newer ones; what the section's budget does not reach is skipped (a line says so).
  train_loader crops/s of the trainer's loader alone (one worker per core) on generated
               VoxCeleb-like files (4-20 s)
  epoch        per network of the issue's table and precision (fp32, bf16): {"measurement": "epoch",
               "model", "precision", "utt_per_s", "peak_gpu_mb"} of steps fed by that loader, with the
               divergence watch
  startup      seconds from `python trainSpeakerNet.py` to its first epoch line, on that list
  evaluation   `--eval`-style scoring of VoxCeleb1-O and -E sized lists (tools/gpu_check_eval.py)
  compare      with --original DIR (a checkout of the 2020 code, b288f2a): tools/compare_original
               --device cuda --size gpu, its JSON lines passed through
  summary      the total time, and the issue's acceptance figures found in the lines above

    python -m tools.gpu_check --original /path/to/b288f2a --output gpu.jsonl   # on the GPU
    python -m tools.gpu_check --device cpu --quick                            # a smoke run here

On a GPU machine without soundfile (this project reads and writes audio with it) carry the wheels of
soundfile, cffi and pycparser (README, Performance, gives the command)."""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from tools.common import build_net  # first: process settings before torch

from tools import gpu_check_train as train  # noqa: E402
from tools.benchmark import Clock, Reporter, describe_device  # noqa: E402
from tools.gpu_check_eval import measure_lists  # noqa: E402
from voxtrainer.runtime import preferred_memory_format, resolve_device  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Seconds per section on the GPU (quick: a few seconds each); the whole run stays within 6 minutes.
BUDGETS = dict(train_step=120, step_timed=1.0, loader=6, epoch=50, startup=20, evaluation=40, compare=100)
QUICK_BUDGETS = dict(train_step=15, step_timed=0.2, loader=1, epoch=4, startup=60, evaluation=4, compare=0)
ACCEPTANCE = {"ResNetSE34L": 12000, "ResNet34": 6000, "ECAPA_TDNN": 10000}  # utt/s, the fastest settings
FP32_ACCEPTANCE = {"ResNetSE34L": 8000}
MEMORY_LIMIT_MB = 8 * 1024


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and budgets: a smoke run")
    parser.add_argument("--output", default=None, help="also append the JSON lines to this file")
    parser.add_argument("--original", default=None, help="a checkout of the 2020 code for the side-by-side")
    return parser


ISSUE_MODELS = 4     # the issue's table: ResNetSE34L, VGGVox, ResNet34, ECAPA_TDNN; newer networks come after
COMPILE_NEEDS_S = 40  # a compiled variant starts only with this much of the section left (compilation)


def step_plan(models):
    """(model, variant) in the order measured: the issue's networks eager, then compiled, then the
    newer networks likewise; what the budget does not reach is skipped, the newer first."""
    eager = [v for v in train.VARIANTS if not v.compile_mode]
    compiled = [v for v in train.VARIANTS if v.compile_mode]
    groups = (models[:ISSUE_MODELS], models[ISSUE_MODELS:])
    return [(model, variant) for group in groups for variants in (eager, compiled)
            for model in group for variant in variants]


def measure_steps(models, device, quick, budgets, report, clock):
    """Every variant of every network while the section's budget lasts (CUDA-only ones on CUDA)."""
    deadline = time.perf_counter() + budgets["train_step"]
    for model, variant in step_plan(models):
        if device.type != "cuda" and variant.precision in ("fp16", "tf32"):
            continue  # CUDA modes: the trainer refuses fp16 and maps tf32 to fp32 on the CPU
        left = deadline - time.perf_counter()
        if left <= 0 or (variant.compile_mode and not quick and left < COMPILE_NEEDS_S):
            report.emit("train_step", model=model, variant=variant.name, skipped="section budget spent")
            continue
        train.measure_step(model, variant, device, quick, budgets["step_timed"], report, clock)


def measure_startup(train_list_path, train_path, test_list, test_path, device, budget_s, report):
    """Seconds from the trainer's process start to its first epoch line (the loader and the first
    step follow it at once)."""
    command = [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"), "--model", "ResNetSE34L", "--trainfunc",
               "angleproto", "--train_list", train_list_path, "--train_path", train_path, "--test_list", test_list,
               "--test_path", test_path, "--save_path", tempfile.mkdtemp(prefix="gpu_check_startup_"),
               "--max_epoch", "1", "--device", device.type, "--batch_size", "8", "--max_frames", "100"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = None
    try:
        for line in process.stdout:
            if " 1 Training " in line:
                seconds = time.perf_counter() - started
                break
            if time.perf_counter() - started > budget_s:
                break
    finally:
        process.kill()
        process.wait()
    return report.emit("startup", model="ResNetSE34L", to_first_epoch_line_s=None if seconds is None
                       else round(seconds, 2), budget_s=budget_s)


def test_list_of(train_list, train_path, path, trials=40):
    """A small test list on the train list's files, for the start-up run's validation."""
    files = sorted(os.path.relpath(name, train_path) for name in train_list.files)[:trials + 1]
    with open(path, "w") as handle:
        for index in range(trials):
            handle.write("%d %s %s\n" % (index % 2, files[index], files[index + 1]))
    return path


def run_compare(original, budget_s, report):
    """tools/compare_original --device cuda --size gpu, its lines passed through."""
    if not original:
        return report.emit("compare", skipped="no --original checkout of the 2020 code given")
    command = [sys.executable, "-m", "tools.compare_original", "--original", original, "--device", "cuda",
               "--size", "gpu"]
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=budget_s)
    except subprocess.TimeoutExpired as expired:
        return report.emit("compare", error="over its %d s budget" % budget_s,
                           stdout_tail=(expired.stdout or "")[-2000:] if isinstance(expired.stdout, str) else None)
    for line in result.stdout.splitlines():
        print(line, flush=True)
    return report.emit("compare", rc=result.returncode,
                       stderr_tail=result.stderr[-1500:] if result.returncode else None)


def summary(lines, started):
    """The acceptance figures: the best epoch rate per network, fp32's, and the peak memory."""
    epochs = [line for line in lines if line["measurement"] == "epoch" and "utt_per_s" in line]
    best = {}
    for line in epochs:
        best[line["model"]] = max(best.get(line["model"], 0), line["utt_per_s"])
    fp32 = {line["model"]: line["utt_per_s"] for line in epochs if line["precision"] == "fp32"}
    peaks = [line["peak_gpu_mb"] for line in epochs if line.get("peak_gpu_mb")]
    return dict(total_s=round(time.perf_counter() - started, 1), best_epoch_utt_per_s=best,
                fp32_epoch_utt_per_s=fp32,
                met={model: best.get(model, 0) >= target for model, target in ACCEPTANCE.items()},
                fp32_met={model: fp32.get(model, 0) >= target for model, target in FP32_ACCEPTANCE.items()},
                max_epoch_peak_gpu_mb=max(peaks) if peaks else None,
                memory_met=None if not peaks else max(peaks) <= MEMORY_LIMIT_MB)


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    clock, report = Clock(device), Reporter(args.output, device)
    info, short = describe_device(device)
    report.emit("device", **info)
    report.summary_device = short
    started = time.perf_counter()
    models = train.present_models()
    measure_steps(models, device, args.quick, budgets, report, clock)
    with tempfile.TemporaryDirectory() as root:
        _, groups, per_group, _ = train.shape_of("ResNetSE34L", args.quick)
        train_list = train.generated_train_list(os.path.join(root, "train"), 24 if args.quick else 800, groups,
                                                per_group)
        rate, workers = train.loader_rate(train_list, args.quick, budgets["loader"])
        report.emit("train_loader", workers=workers, crops_per_s=round(rate, 1),
                    crops_per_s_per_worker=round(rate / workers, 1))
        epoch_models = models[:ISSUE_MODELS] if not args.quick else models[:1]
        for model in epoch_models:
            for precision in train.EPOCH_PRECISIONS:
                train.measure_epoch(model, precision, train_list, device, args.quick,
                                    budgets["epoch"] / (len(epoch_models) * len(train.EPOCH_PRECISIONS)), report,
                                    clock)
        wav = os.path.join(root, "train", "wav")
        test_list = test_list_of(train_list, wav, os.path.join(root, "test_list.txt"), 8 if args.quick else 40)
        measure_startup(train_list.listfile, wav, test_list, wav, device, budgets["startup"], report)
        net = build_net("ResNetSE34L", device=device, memory_format=preferred_memory_format(device, "ResNetSE34L"))
        measure_lists(net.eval(), "ResNetSE34L", os.path.join(root, "eval"), budgets["evaluation"],
                      0 if args.quick else len(os.sched_getaffinity(0)), report, clock, args.quick)
    if budgets["compare"]:
        run_compare(args.original, budgets["compare"], report)
    report.emit("summary", **summary(report.lines, started))


if __name__ == "__main__":
    main()
