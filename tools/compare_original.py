"""This project against the original 2020 voxceleb_trainer, side by side, as whole processes.

    git -C <voxceleb_trainer clone> archive b288f2a | tar -x -C /tmp/orig    # the original: not shipped here
    python -m tools.compare_original --original /tmp/orig [--repeats 3] [--quick] [--workdir DIR]

Both programs run on the same generated data, the same checkpoint and the same flags, each as a
fresh `python` process (start-up, imports, data loading and all), interleaved original / project /
original / project so that a change in the machine's load hits both alike:

  eval   `--eval` of a ResNetSE34L checkpoint (random weights, written by this project's
         saveParameters in the original format): 300 files of 4-6 s, 2,400 balanced trials,
         `--max_frames 300` (10 crops of 3 s per file)
  epoch  one training epoch from scratch, the seed's flags `--model ResNetSE34L --trainfunc
         angleproto --batch_size 32 --nSpeakers 2 --max_frames 200 --max_epoch 1 --test_interval 1`
         on 320 speakers x 2 utterances (10 steps of 32 x 2 crops of 2 s), then one validation
         on 40 trials

`--nDataLoaderThread` is left at the seed's default (5) in both; this project caps its loader
processes at the number of cores, the original runs 5 threads. The data are make_demo_set's
synthetic voices, deterministic for the seed. `--quick` shrinks everything (16 eval files, 24
trials, 2 training steps of 8 x 2) and runs once, for the test suite.

Output: one JSON line per run (wall seconds, CPU seconds of the process and its reaped children,
peak RSS of the largest process in its tree, load average before it, the EER it printed), one per
pair with the ratio original / project, one per case (min / median / max and whether both `--eval`
runs printed the same EER line) and a summary: the median wall-time ratios against the targets
(eval 2.0x, epoch 1.5x). Timings on a shared machine are noisy: compare `cpu_s` too, and the load.

Both programs get the caller's environment unchanged. This project sets OMP_WAIT_POLICY=PASSIVE
for itself unless it is set (voxtrainer/runtime.py); the original leaves OpenMP's threads spinning,
which costs it much more on a busy machine than on an idle one. `OMP_WAIT_POLICY=PASSIVE python -m
tools.compare_original ...` runs both with the same policy, to tell the two effects apart.

The original is run unmodified from its checkout by this file in `--run-original` mode, which
patches torch in memory, then executes the original's trainSpeakerNet.py with runpy. The 2020 code
needs these patches to run on a CPU with a current torch (PATCHES holds the one-line form):

  cuda        torch.Tensor.cuda and torch.nn.Module.cuda return self: the original calls .cuda()
              unconditionally, and a CPU build of torch raises there.
  torch.load  map_location='cpu' by default, so a checkpoint written on a GPU loads too.
  torchaudio  the original's models build torchaudio.transforms.MelSpectrogram. Where torchaudio
              cannot be imported (each release pins one torch; none is published for 2.13), a stand-in
              module provides MelSpectrogram from this project's models/frontend.py, loaded by
              path, which equals torchaudio's (tests/test_frontend.py) and has its buffer names.
              The front end is a small part of a step, so the stand-in hardly moves the timing;
              which one ran is in each original run's line.
  accuracy    the original's accuracy.accuracy (top-1 and top-5 of the angleproto loss) calls
              .view(-1) on a transposed comparison; current torch keeps that layout and view
              fails. It is replaced by an equal precision@k that uses reshape.
  pairwise    F.pairwise_distance reduces over dimension 1, as in the torch of 2020; since torch
              1.11 it reduces over the last dimension, which silently changes the original's trial
              score (README, "Differences from the original"). Without it the EERs would differ.
  scores      observation only: tuneThresholdfromScore first writes the scores it is given to
              $COMPARE_ORIGINAL_SCORES, so that each eval pair also reports the largest difference
              between the two programs' trial scores, not only their EER lines.

Nothing else is changed: the original's threads, loops and sleeps are what is timed.

`--device cuda` (on a GPU machine; tools/gpu_check runs it with `--size gpu`: 2 epochs of the seed's
batch of 200 over 1,000 speakers x 4 files, and the same --eval case) runs the original as it was
written, on CUDA: the cuda and torch.load patches are left out, the others stay (current torch
needs them, or they only observe).
"""

import argparse
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BASE_ENV = dict(os.environ)  # both programs get the caller's environment, before anything here sets any
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PATCHES = {
    "cuda": "torch.Tensor.cuda and torch.nn.Module.cuda are no-ops (CPU)",
    "torch.load": "map_location='cpu'",
    "torchaudio": "stand-in module with MelSpectrogram from models/frontend.py when torchaudio cannot be imported",
    "accuracy": "accuracy.accuracy: equal precision@k with reshape instead of view (fails on current torch)",
    "pairwise": "F.pairwise_distance reduces over dimension 1, the 2020 semantics (torch >= 1.11: last dimension)",
    "scores": "tuneThresholdfromScore first writes the trial scores to $COMPARE_ORIGINAL_SCORES (observation only)",
}
TARGETS = {"eval": 2.0, "epoch": 1.5}
SIDES = ("original", "project")
FULL = dict(speakers=30, utts=10, trials=2400, train_speakers=320, batch_size=32, val_trials=40, repeats=3)
QUICK = dict(speakers=4, utts=4, trials=24, train_speakers=16, batch_size=8, val_trials=8, repeats=1)
# --size gpu (tools/gpu_check): the seed's batch of 200 speakers, 2 epochs over 1,000 speakers x 4
# utterances of 4-6 s (10 steps an epoch), the same --eval case; one pair, to fit the check's budget.
GPU = dict(speakers=30, utts=10, trials=2400, train_speakers=1000, train_utts=4, batch_size=200, val_trials=40,
           repeats=1, max_epoch=2)
SIZES = {"full": FULL, "quick": QUICK, "gpu": GPU}
DEVICE_ENV = "COMPARE_ORIGINAL_DEVICE"  # "cuda": the original runs on the GPU, without the CPU patches
EVAL_FRAMES, TRAIN_FRAMES = 300, 200


# ---------------------------------------------------------------------------------------------
# The original, patched in memory (this file run with --run-original DIR ARGS...)

def precision_at_k(output, target, topk=(1,)):
    """Percent of rows whose target is among the k highest outputs, one 1-element tensor per k."""
    correct = output.topk(max(topk), 1, True, True)[1].eq(target.view(-1, 1))
    return [correct[:, :k].reshape(-1).float().sum(0, keepdim=True) * (100.0 / target.size(0)) for k in topk]


def pairwise_distance_2020(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """F.pairwise_distance as torch computed it in 2020: the norm over dimension 1 (the same as
    today's for 2-D inputs; the original's trial score passes 3-D ones)."""
    import torch
    return torch.norm(x1 - x2 + eps, p=p, dim=1, keepdim=keepdim)


def torchaudio_standin():
    """A `torchaudio` module whose transforms.MelSpectrogram is models/frontend.py's, loaded by path
    so that the original's own `models` folder stays the one `import models...` finds."""
    import importlib.util
    import types
    spec = importlib.util.spec_from_file_location("_project_frontend", os.path.join(ROOT, "models", "frontend.py"))
    frontend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frontend)

    class MelSpectrogram(frontend.MelSpectrogram):
        def __init__(self, sample_rate=16000, n_fft=400, win_length=None, hop_length=None, f_min=0.0,
                     f_max=None, pad=0, n_mels=128):
            if (sample_rate, n_fft, win_length, hop_length, pad) != (16000, 512, 400, 160, 0):
                raise NotImplementedError("the torchaudio stand-in has only the original's STFT settings")
            super().__init__(n_mels=n_mels, sample_rate=sample_rate, f_min=f_min, f_max=f_max)

    module = types.ModuleType("torchaudio")
    module.transforms = types.SimpleNamespace(MelSpectrogram=MelSpectrogram)
    return module


def saving_scores(tune, path):
    """tuneThresholdfromScore that first writes the trial scores it is given to `path`."""
    def tune_and_save(scores, labels, *args, **kwargs):
        with open(path, "w") as handle:
            handle.writelines("%f %d\n" % pair for pair in zip(scores, labels))
        return tune(scores, labels, *args, **kwargs)
    return tune_and_save


def run_original(original, argv):
    """Execute the original's trainSpeakerNet.py with `argv`, in this process, after PATCHES."""
    import runpy
    import torch
    import torch.nn.functional as F
    original = os.path.abspath(original)
    on_gpu = os.environ.get(DEVICE_ENV) == "cuda"
    # The original imports its own SpeakerNet, DatasetLoader, models, loss...: never this project's.
    sys.path[:] = [original] + [p for p in sys.path[1:] if p and os.path.abspath(p) != ROOT]
    if not on_gpu:  # on a GPU the original's .cuda() calls and checkpoints work as they are
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
        torch.nn.Module.cuda = lambda self, *args, **kwargs: self
        load = torch.load
        torch.load = lambda f, *args, **kwargs: load(f, *args, **{"map_location": "cpu", **kwargs})
    try:
        # The original's own dependency, loaded for its process only; this project never needs it.
        which = "torchaudio %s" % importlib.import_module("torchaudio").__version__
    except Exception:  # absent, or built for another torch
        sys.modules["torchaudio"] = torchaudio_standin()
        which = "stand-in (models/frontend.py)"
    print("compare_original: torchaudio = %s" % which, file=sys.stderr, flush=True)
    import accuracy  # the original's module, found first on sys.path
    accuracy.accuracy = precision_at_k
    F.pairwise_distance = pairwise_distance_2020
    if os.environ.get("COMPARE_ORIGINAL_SCORES"):
        import tuneThreshold
        tuneThreshold.tuneThresholdfromScore = saving_scores(tuneThreshold.tuneThresholdfromScore,
                                                             os.environ["COMPARE_ORIGINAL_SCORES"])
    script = os.path.join(original, "trainSpeakerNet.py")
    sys.argv = [script] + list(argv)
    runpy.run_path(script, run_name="__main__")


# ---------------------------------------------------------------------------------------------
# Data and commands

def balanced(trials, n):
    """The first n/2 target and n/2 non-target trials, in list order."""
    targets = [t for t in trials if t[0] == 1][:n // 2]
    non_targets = [t for t in trials if t[0] == 0][:n - len(targets)]
    chosen = set(targets + non_targets)
    return [t for t in trials if t in chosen]


def make_data(workdir, size):
    """Demo-set voices of 4-6 s: `speakers` x `utts` test files and `train_speakers` x 2 train
    files; a balanced test list of `trials`, a validation list of `val_trials` (both on the test
    files); a ResNetSE34L/angleproto checkpoint of random weights (seed 0). Returns a dict of paths."""
    import dataclasses
    from voxtrainer.data.demo import make_demo_set, write_lines
    demo = make_demo_set(workdir, n_train_speakers=size["train_speakers"], utts_per_speaker=size.get("train_utts", 2),
                         n_test_speakers=size["speakers"], utts_per_test_speaker=size["utts"],
                         min_duration=4.0, max_duration=6.0, verbose=False)
    with open(demo.test_list) as handle:
        every = [(int(label), enrol, test) for label, enrol, test in (line.split() for line in handle)]
    if sum(t[0] for t in every) < size["trials"] // 2:
        raise ValueError("too few target trials for %d balanced trials" % size["trials"])
    data = dict(dataclasses.asdict(demo), test_list=os.path.join(workdir, "test_list.txt"),
                val_list=os.path.join(workdir, "val_list.txt"), checkpoint=os.path.join(workdir, "random.model"))
    for path, n in ((data["test_list"], size["trials"]), (data["val_list"], size["val_trials"])):
        write_lines(path, ["%d %s %s" % t for t in balanced(every, n)])
    import torch
    from voxtrainer.network import SpeakerNet
    torch.manual_seed(0)
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=512).saveParameters(data["checkpoint"])
    return data


def flags(case, data, size, save_path):
    """The trainSpeakerNet.py flags of a case: the same for both programs (the original has no
    --device: it always runs on CUDA; the project picks CUDA where there is one)."""
    epochs = size.get("max_epoch", 1)
    common = ["--model", "ResNetSE34L", "--trainfunc", "angleproto", "--save_path", save_path,
              "--test_path", data["test_path"]]
    if case == "eval":
        return common + ["--eval", "--max_frames", str(EVAL_FRAMES), "--test_list", data["test_list"],
                         "--initial_model", data["checkpoint"]]
    return common + ["--batch_size", str(size["batch_size"]), "--nSpeakers", "2", "--max_frames", str(TRAIN_FRAMES),
                     "--max_epoch", str(epochs), "--test_interval", str(epochs), "--test_list", data["val_list"],
                     "--train_list", data["train_list"], "--train_path", data["train_path"]]


def command(side, original, args):
    """(argv, cwd) of one program: the original through --run-original, from its checkout."""
    if side == "original":
        return [sys.executable, os.path.abspath(__file__), "--run-original", original] + args, original
    return [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py")] + args, ROOT


# ---------------------------------------------------------------------------------------------
# Measuring

def measure(argv, cwd, folder, env):
    """Run argv to its end; stdout and stderr go to `folder`. Wall and CPU seconds, peak RSS."""
    os.makedirs(folder, exist_ok=True)
    out_path, err_path = os.path.join(folder, "stdout.txt"), os.path.join(folder, "stderr.txt")
    load = os.getloadavg()[0]
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        # wait4: the child's resources including its reaped descendants (the loader processes)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = (open(path, errors="replace").read() for path in (out_path, err_path))
    record = dict(rc=process.returncode, wall_s=round(wall, 2), cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                  peak_rss_mb=round(usage.ru_maxrss / 1024), loadavg_before=round(load, 2),
                  eer=last_float(r"(?:^|[\r\n])EER (\d+\.\d+)", stdout), veer=last_float(r"VEER (\d+\.\d+)", stdout))
    found = re.search(r"compare_original: torchaudio = (.*)", stderr)
    if found:
        record["torchaudio"] = found.group(1)
    if process.returncode != 0:
        record["stderr_tail"] = stderr[-2000:]
    return record


def last_float(pattern, text):
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


def read_scores(path):
    """The first column of a score file as floats, or None when it is missing."""
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return [float(line.split()[0]) for line in handle if line.strip()]


def max_score_difference(original_file, project_file):
    """Largest |original - project| trial score, list order (None when either file is missing)."""
    original, project = read_scores(original_file), read_scores(project_file)
    if original is None or project is None or len(original) != len(project):
        return None
    return max(abs(a - b) for a, b in zip(original, project))


def spread(values):
    return dict(min=min(values), median=round(statistics.median(values), 3), max=max(values))


def emit(record):
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", required=True, help="a checkout of the original (e.g. commit b288f2a)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="original/project pairs per case (default 3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="tiny data, one repeat: checks that everything runs")
    parser.add_argument("--size", default=None, choices=sorted(SIZES),
                        help="the data's size (default full; --quick is --size quick; gpu: tools/gpu_check's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: the original runs on the GPU, unpatched except what current torch requires "
                             "(no .cuda()/torch.load patches); the project picks CUDA itself (--device auto)")
    parser.add_argument("--workdir", default=None, help="keep data and run logs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    original = os.path.abspath(args.original)
    if not os.path.isfile(os.path.join(original, "trainSpeakerNet.py")):
        parser.error("--original %s: no trainSpeakerNet.py there" % original)
    size = SIZES[args.size or ("quick" if args.quick else "full")]
    if args.device == "cuda":
        BASE_ENV[DEVICE_ENV] = "cuda"
    if ROOT not in sys.path:  # run as a script: voxtrainer makes the data
        sys.path.insert(0, ROOT)
    workdir = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix="compare_original_")
    try:
        return compare(original, size, args.repeats or size["repeats"], workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def compare(original, size, repeats, workdir):
    """Make the data, run the pairs, print the JSON lines. 0 when every run succeeded and the two
    `--eval` runs printed the same EER."""
    import torch
    started = time.time()
    data = make_data(os.path.join(workdir, "data"), size)
    emit(dict(measurement="setup", torch=torch.__version__, cores=len(os.sched_getaffinity(0)),
              loadavg=os.getloadavg(), original=original, repeats=repeats, size=size, patches=PATCHES,
              data_s=round(time.time() - started, 1), workdir=workdir))
    runs = {(case, side): [] for case in TARGETS for side in SIDES}
    pairs = {case: [] for case in TARGETS}
    for repeat in range(repeats):
        for case in TARGETS:
            folders = {side: os.path.join(workdir, "runs", "%s-%s-%d" % (case, side, repeat)) for side in SIDES}
            for side in SIDES:
                argv, cwd = command(side, original, flags(case, data, size, folders[side]))
                if repeat == 0:
                    emit(dict(measurement="command", case=case, side=side, cwd=cwd, argv=argv))
                # the original's "scores" patch writes the trial scores it was given here
                env = dict(BASE_ENV, COMPARE_ORIGINAL_SCORES=os.path.join(folders[side], "original_scores.txt"))
                runs[case, side].append(measure(argv, cwd, folders[side], env if side == "original" else BASE_ENV))
                emit(dict(measurement="run", case=case, side=side, repeat=repeat, **runs[case, side][-1]))
            original_s, project_s = (runs[case, side][-1]["wall_s"] for side in SIDES)
            pair = dict(measurement="pair", case=case, repeat=repeat, original_s=original_s, project_s=project_s,
                        ratio=round(original_s / project_s, 3))
            if case == "eval":
                pair["max_abs_score_diff"] = max_score_difference(
                    os.path.join(folders["original"], "original_scores.txt"),
                    os.path.join(folders["project"], "result", "eval_scores.txt"))
            pairs[case].append(pair)
            emit(pair)
    summary = dict(measurement="summary", loadavg=os.getloadavg(), total_s=round(time.time() - started, 1),
                   omp_wait_policy=BASE_ENV.get("OMP_WAIT_POLICY", "unset (project: PASSIVE; original: OpenMP's)"))
    for case in TARGETS:
        line = case_line(case, runs, pairs[case])
        emit(line)
        summary.update({case + "_ratio": line["ratio"]["median"], case + "_target": TARGETS[case],
                        case + "_met": line["ratio"]["median"] >= TARGETS[case]})
        if case == "eval":
            summary["eers_match"] = line["eers_match"]
    summary["runs_ok"] = all(r["rc"] == 0 for records in runs.values() for r in records)
    emit(summary)
    return 0 if summary["runs_ok"] and summary["eers_match"] else 1


def case_line(case, runs, pairs):
    """min / median / max of each side's runs and of the pairs' ratios; for eval, the EERs."""
    line = dict(measurement="case", case=case, ratio=spread([pair["ratio"] for pair in pairs]))
    for side in SIDES:
        line[side] = {key: spread([r[key] for r in runs[case, side]]) for key in ("wall_s", "cpu_s", "peak_rss_mb")}
    line["cpu_ratio"] = round(line["original"]["cpu_s"]["median"] / line["project"]["cpu_s"]["median"], 3)
    if case == "eval":
        eers = {side: sorted({r["eer"] for r in runs[case, side]}, key=str) for side in SIDES}
        differences = [pair["max_abs_score_diff"] for pair in pairs]
        line.update(eer=eers, eers_match=None not in eers["original"] and eers["original"] == eers["project"],
                    max_abs_score_diff=None if None in differences else max(differences))
    return line


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--run-original":
        run_original(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
