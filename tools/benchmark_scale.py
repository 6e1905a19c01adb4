"""Start-up time and memory at VoxCeleb scale: one JSON line per measurement.

    python -m tools.benchmark_scale                       # VoxCeleb2 / VoxCeleb1-E sizes, and 8,000 files
    python -m tools.benchmark_scale --quick               # smoke run: tiny lists
    python -m tools.benchmark_scale --repo /tmp/before    # the same on another checkout (before/after)

Run from the repository root. It writes, in a temporary folder, `--real_files` real 16 kHz files
(noise, 4-20 s) and lists of symbolic links to them: a train list of `--utterances` utterances of
`--speakers` speakers (VoxCeleb2's dev set: 1,092,009 of 5,994), a test list of `--test_files`
files and `--trials` trials (VoxCeleb1-E: 145,160 and 579,818), and the same with `--small_files`
files (8,000) for comparison. Every trainer run is a child process (tools/scale_probe.py) running
trainSpeakerNet.py of `--repo` with the seed's flags (ResNetSE34L, angleproto, batch 200 x 2,
200 frames) and `--workers` loader workers; its network step is replaced by a no-op, so the loader
runs flat out and the times below exclude the network's own steps. Measurements (`measurement`):

  train_start   seconds from starting the child process to the trainer's epoch line and to the
                entry of the first training step (and the main process's CPU seconds by then, which
                other processes on a shared machine hardly change); memory (USS/PSS/RSS, MB, /proc/<pid>/smaps_rollup)
                of the main process and of each loader worker: peak over the first `--watch_s` s
                after the first step (the copy-on-write growth of forked workers is their USS)
  train_epoch   the same at the end of one whole epoch of the real loader (all its batches read by
                the workers, `--max_seg_per_spk` utterances per speaker: the seed's 100 by default):
                the memory then and the peak over the epoch, the epoch's seconds and steps
  sampler       the sampler's seconds to build, and to draw and iterate an epoch's batches
  eval_start    --eval of the test list up to the first batch of crops reaching the network:
                seconds and the memory of the main process and the eval loader worker then
  acceptance    first step within 30 s at full size; each worker's USS with the large list minus
                the same worker's with the small one, after the first minutes and at the epoch's end
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy

from tools.benchmark_pipeline import write_audio_set

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SEED_FLAGS = ["--model", "ResNetSE34L", "--trainfunc", "angleproto", "--batch_size", "200", "--nPerSpeaker", "2",
              "--max_frames", "200", "--eval_frames", "300", "--max_epoch", "1", "--test_interval", "1",
              "--nOut", "512", "--encoder_type", "SAP"]
FIRST_STEP_TARGET_S, WORKER_GROWTH_TARGET_MB = 30.0, 100.0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=REPO, help="the checkout whose trainer is measured")
    parser.add_argument("--utterances", type=int, default=1092009)
    parser.add_argument("--speakers", type=int, default=5994)
    parser.add_argument("--test_files", type=int, default=145160)
    parser.add_argument("--trials", type=int, default=579818)
    parser.add_argument("--small_files", type=int, default=8000, help="utterances and test files of the comparison")
    parser.add_argument("--real_files", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--max_seg_per_spk", type=int, default=100)
    parser.add_argument("--watch_s", type=float, default=60.0, help="the 'first minutes' after the first step")
    parser.add_argument("--workdir", default=None, help="where the lists and links go (kept; default: a temporary "
                        "folder, removed); reused when it already holds them")
    parser.add_argument("--skip", default="", help="comma-separated: train,sampler,eval,small,large")
    parser.add_argument("--output", default=None, help="also append the JSON lines to this file")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.utterances, args.speakers, args.test_files, args.trials = 600, 30, 60, 200
        args.small_files, args.real_files, args.batch_size, args.max_seg_per_spk = 240, 6, 4, 4
        args.watch_s = min(args.watch_s, 1.0)
    return args


def emit(output, measurement, **fields):
    record = dict({"measurement": measurement}, **fields, loadavg=[round(x, 2) for x in os.getloadavg()])
    line = json.dumps(record)
    print(line, flush=True)
    if output:
        with open(output, "a") as handle:
            handle.write(line + "\n")
    return record


def link_tree(root, folder, count, groups, targets):
    """`count` symbolic links root/folder/gNNNNN/NNNNNNN.wav, in `groups` folders, cycling through
    `targets` (absolute paths); returns the relative names, folder by folder."""
    names = []
    for index in range(count):
        group = index * groups // count
        name = "g%05d/%07d.wav" % (group, index)
        path = os.path.join(root, folder, name)
        if index == 0 or group != (index - 1) * groups // count:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(targets[index % len(targets)], path)
        names.append(name)
    return names


def write_lines(path, lines):
    with open(path, "w") as handle:
        handle.writelines(line + "\n" for line in lines)


def write_train_lists(root, utterances, speakers, small_files, targets):
    """train_large.txt over all links, train_small.txt over the first utterances of as many speakers
    as give 40 each (at least 2 each: a batch needs distinct speakers)."""
    names = link_tree(root, "train", utterances, speakers, targets)
    write_lines(os.path.join(root, "train_large.txt"), ("g%05d %s" % (index * speakers // utterances, name)
                                                        for index, name in enumerate(names)))
    per_speaker = max(2, min(40, utterances // speakers))
    by_speaker = {}
    for name in names:
        by_speaker.setdefault(name.split("/")[0], []).append(name)
    small = [("%s %s" % (speaker, name)) for speaker, files in by_speaker.items() for name in files[:per_speaker]]
    write_lines(os.path.join(root, "train_small.txt"), small[:small_files])


def write_test_lists(root, test_files, trials, small_files, targets, seed=0):
    """test_large.txt (`trials` trials over `test_files` links) and test_small.txt (as many trials
    per file over `small_files` of them); half target, half non-target labels, random pairs."""
    names = link_tree(root, "test", test_files, max(1, test_files // 40), targets)
    rng = numpy.random.default_rng(seed)
    for suffix, files, count in (("large", test_files, trials), ("small", min(small_files, test_files),
                                                                  max(2, trials * small_files // test_files))):
        pairs = rng.integers(0, files, size=(count, 2))
        write_lines(os.path.join(root, "test_%s.txt" % suffix), ("%d %s %s" % (index % 2, names[a], names[b])
                                                                 for index, (a, b) in enumerate(pairs.tolist())))


def prepare(root, args):
    """The real files, the links and the lists under root (once: a marker file says they are done)."""
    marker = os.path.join(root, "ready.json")
    sizes = {key: getattr(args, key) for key in ("utterances", "speakers", "test_files", "trials", "small_files",
                                                 "real_files")}
    if os.path.exists(marker) and json.load(open(marker)) == sizes:
        return 0.0
    started = time.time()
    for folder in ("wav", "train", "test"):
        shutil.rmtree(os.path.join(root, folder), ignore_errors=True)
    names, _ = write_audio_set(root, args.real_files)
    targets = [os.path.join(os.path.abspath(root), "wav", name) for name in names]
    write_train_lists(root, args.utterances, args.speakers, args.small_files, targets)
    write_test_lists(root, args.test_files, args.trials, args.small_files, targets)
    write_lines(os.path.join(root, "test_train.txt"), ["%d %s %s" % (index % 2, names[index], names[-1 - index])
                                                       for index in range(min(len(names) // 2, 10))])
    with open(marker, "w") as handle:
        json.dump(sizes, handle)
    return time.time() - started


def run_probe(repo, mode, flags, events, probe_flags=()):
    """Starts tools/scale_probe.py; returns (start time, its output lines with their times, status)."""
    command = [sys.executable, os.path.join(HERE, "scale_probe.py"), "--repo", repo, "--events", events,
               *probe_flags, mode, "--"] + flags
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.time()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    lines = [(time.time(), raw.decode("utf-8", "replace")) for raw in child.stdout]
    return started, lines, child.wait()


def read_events(path):
    events = {}
    if os.path.exists(path):
        for line in open(path):
            record = json.loads(line)
            events[record["event"]] = record
    return events


def uss(memory):
    return None if memory is None else memory["uss"]


def failure(mode, status, lines):
    tail = "".join(text for _, text in lines[-20:])
    raise SystemExit("benchmark_scale: the %s probe ended with status %s:\n%s" % (mode, status, tail))


def measure_training(root, args, size, run_index):
    """train_start and train_epoch of one list (`size`: large or small); returns both records' fields."""
    events_path = os.path.join(root, "events_train_%s_%d.jsonl" % (size, run_index))
    save_path = os.path.join(root, "run_%s_%d" % (size, run_index))
    shutil.rmtree(save_path, ignore_errors=True)
    flags = SEED_FLAGS + ["--train_list", os.path.join(root, "train_%s.txt" % size),
                          "--train_path", os.path.join(root, "train"),
                          "--test_list", os.path.join(root, "test_train.txt"), "--test_path", os.path.join(root, "wav"),
                          "--save_path", save_path, "--nDataLoaderThread", str(args.workers),
                          "--batch_size", str(args.batch_size), "--max_seg_per_spk", str(args.max_seg_per_spk)]
    started, lines, status = run_probe(args.repo, "train", flags, events_path, ["--watch_s", str(args.watch_s)])
    events = read_events(events_path)
    if "epoch_end" not in events:
        failure("train", status, lines)
    epoch_line = next((moment for moment, text in lines if "Training" in text and "with LR" in text), None)
    start = {"list": size, "epoch_line_s": None if epoch_line is None else round(epoch_line - started, 2),
             "first_step_s": round(events["first_step"]["t"] - started, 2),
             "first_step_cpu_s": events["first_step"]["cpu_s"],
             "main_peak_mb": events["first_minutes"]["peak"]["main"],
             "workers_peak_mb": events["first_minutes"]["peak"]["workers"],
             "watch_s": args.watch_s, "steps_in_watch": events["first_minutes"]["steps"]}
    epoch = {"list": size, "epoch_s": events["epoch_end"]["epoch_s"], "steps": events["epoch_end"]["steps"],
             "max_seg_per_spk": args.max_seg_per_spk, "main_mb": events["epoch_end"]["now"]["main"],
             "workers_mb": events["epoch_end"]["now"]["workers"], "main_peak_mb": events["epoch_end"]["peak"]["main"],
             "workers_peak_mb": events["epoch_end"]["peak"]["workers"]}
    return start, epoch


def measure_eval(root, args, size, run_index):
    """eval_start of one test list: --eval with a checkpoint of the seed's network."""
    events_path = os.path.join(root, "events_eval_%s_%d.jsonl" % (size, run_index))
    flags = SEED_FLAGS + ["--eval", "--initial_model", checkpoint(root, args.repo),
                          "--test_list", os.path.join(root, "test_%s.txt" % size),
                          "--test_path", os.path.join(root, "test"),
                          "--save_path", os.path.join(root, "eval_%s_%d" % (size, run_index)),
                          "--nDataLoaderThread", str(args.workers)]
    started, lines, status = run_probe(args.repo, "eval", flags, events_path)
    events = read_events(events_path)
    if "first_batch" not in events:
        failure("eval", status, lines)
    first = events["first_batch"]
    return {"list": size, "first_batch_s": round(first["t"] - started, 2), "first_batch_cpu_s": first["cpu_s"],
            "main_mb": first["now"]["main"],
            "workers_mb": first["now"]["workers"], "main_peak_mb": first["peak"]["main"],
            "workers_peak_mb": first["peak"]["workers"]}


def checkpoint(root, repo):
    """A checkpoint of the seed's network (weights of seed 0), written once by `repo`'s code."""
    path = os.path.join(root, "seed_net.model")
    if not os.path.exists(path):
        code = ("import sys, torch; sys.path.insert(0, %r); from voxtrainer.network import SpeakerNet; "
                "torch.manual_seed(0); torch.save(SpeakerNet(model='ResNetSE34L', trainfunc='angleproto', nOut=512, "
                "encoder_type='SAP', nClasses=5994).state_dict(), %r)" % (os.path.abspath(repo), path))
        subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)
    return path


def measure_sampler(root, args, size):
    events_path = os.path.join(root, "events_sampler_%s.jsonl" % size)
    flags = [os.path.join(root, "train_%s.txt" % size), os.path.join(root, "train"), str(args.batch_size), "2",
             str(args.max_seg_per_spk)]
    _, lines, status = run_probe(args.repo, "sampler", flags, events_path)
    events = read_events(events_path)
    if "sampler" not in events:
        failure("sampler", status, lines)
    return {"list": size, "build_s": events["sampler"]["build_s"], "epochs": events["sampler"]["epochs"]}


def growth(large, small):
    """Each worker's USS with the large list minus the same worker's with the small one (MB)."""
    return [round(big["uss"] - little["uss"], 1) for big, little in zip(large, small)]


def acceptance(output, starts, epochs):
    fields = {}
    if "large" in starts:
        fields["first_step_s"] = starts["large"]["first_step_s"]
        fields["first_step_within_30s"] = starts["large"]["first_step_s"] <= FIRST_STEP_TARGET_S
    if "large" in starts and "small" in starts:
        early = growth(starts["large"]["workers_peak_mb"], starts["small"]["workers_peak_mb"])
        late = growth(epochs["large"]["workers_mb"], epochs["small"]["workers_mb"])
        fields.update(worker_uss_growth_first_minutes_mb=early, worker_uss_growth_epoch_end_mb=late,
                      workers_within_100mb=all(value <= WORKER_GROWTH_TARGET_MB for value in early + late))
    if fields:
        emit(output, "acceptance", **fields)


def main(argv=None):
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    sizes = [size for size in ("small", "large") if size not in skip]
    root = args.workdir or tempfile.mkdtemp(prefix="benchmark_scale_")
    os.makedirs(root, exist_ok=True)
    try:
        setup_s = prepare(root, args)
        emit(args.output, "setup", repo=os.path.abspath(args.repo), cpus=os.cpu_count(), setup_s=round(setup_s, 1),
             utterances=args.utterances, speakers=args.speakers, test_files=args.test_files, trials=args.trials,
             small_files=args.small_files, real_files=args.real_files, workers=args.workers)
        starts, epochs = {}, {}
        for run_index, size in enumerate(sizes):
            if "train" not in skip:
                starts[size], epochs[size] = measure_training(root, args, size, run_index)
                emit(args.output, "train_start", **starts[size])
                emit(args.output, "train_epoch", **epochs[size])
            if "sampler" not in skip:
                emit(args.output, "sampler", **measure_sampler(root, args, size))
            if "eval" not in skip:
                emit(args.output, "eval_start", **measure_eval(root, args, size, run_index))
        acceptance(args.output, starts, epochs)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
