"""The pipeline around the network, as a GPU sees it: one JSON line per measurement.

On a GPU the network's arithmetic is cheap and the time goes to reading and cropping audio, moving
batches and scoring trials. This benchmark stands in for such a machine with `NullNet`, a network
of almost no arithmetic, run through the trainer's own code around the network, on generated
VoxCeleb-like audio (16 kHz int16 wav of noise, 4-20 s, about 8 s on average) and random embeddings.

    python -m tools.benchmark_pipeline                  # full run, a few minutes
    python -m tools.benchmark_pipeline --quick          # tiny sizes, seconds (what the tests run)
    python -m tools.benchmark_pipeline --output pipeline.jsonl --threads 2

Run from the repository root. Measurements (the `measurement` field of each line):

  device         CPU model, torch version, threads, load average (as tools.benchmark)
  audio_set      the generated files: count, durations, size, seconds to write them
  crop_check     training crops read by voxtrainer.reading.audio.load_random_crop (seeking) against the
                 original's loadWAV(evalmode=False) on the whole file, the same seeds: identical?
  train_loader   voxtrainer.reading.datasets.make_train_loader with 0, 1, 2 worker processes, the seed's
                 batch (--batch_size 200 speakers x 2 utterances x 200 frames), each batch through
                 tools.common.take_step (voxtrainer.training.step.train_step) on NullNet; crops/s, crops/s
                 per worker process (the target: >= 1,500), crops per worker CPU second, peak RSS
  train_crop_cost  what today's recipes cost a training crop (voxtrainer.reading.datasets.TrainDataset, one
                 utterance per group, in this process): plain, --speed_perturb, --dither 1; crops/s
                 of each, measured interleaved (best of --crop_rounds rounds, so that load from other
                 processes hits all alike), and each rate relative to the plain one
  eval_loader    SpeakerNet.embed_files (evaluate_list's embedding pass: EvalDataset through its
                 DataLoader) on NullNet, 10 crops of --eval_frames per file, 0, 1, 2 workers; files/s
  scoring        voxtrainer.scoring.trials.trial_scores, the exact 2020 score, on random 512-dim float32
                 embeddings of 10 crops per file, at VoxCeleb1-O scale (4,874 files, 37,720 trials;
                 target < 2 s on 2 cores) and VoxCeleb1-E scale (145,000 files, 580,000 trials;
                 target: peak memory < 8 GiB), each in its own process so that its peak RSS is its
                 own; scores checked bit for bit against all trials gathered at once (the former
                 scorer) on the first --check_trials trials
  scoring_block  the VoxCeleb1-O scoring with other trial block sizes (voxtrainer.scoring.trials.TRIALS_PER_BLOCK)
  summary        total time and the targets, met or not

Timings are wall-clock; `cpu_s` and `cpu_share` (CPU seconds / wall seconds) and `loadavg` show
how much of a shared machine the run had. Worker figures come from getrusage(RUSAGE_CHILDREN),
read after the workers exit: `worker_cpu_s`, and `largest_child_peak_rss_mb`, the largest peak RSS
of any child process so far (forked workers count the pages they share with the main process).
"""

import argparse
import contextlib
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time

# tools.common first: it sets OMP_WAIT_POLICY before torch is imported
from tools.common import children_cpu_seconds, children_peak_rss_mb, cpu_seconds, take_step

import numpy  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402

from tools.benchmark import PeakMemory, Reporter, cpu_share, describe_device, process_memory_mb  # noqa: E402
from voxtrainer.scoring import trials as scoring  # noqa: E402
from voxtrainer import SAMPLE_RATE  # noqa: E402
from voxtrainer.reading.audio import crop_samples, load_random_crop, loadWAV  # noqa: E402
from tools.benchmark_augment import loader_seconds_per_crop  # noqa: E402
from voxtrainer.reading.datasets import Group, TrainDataset, make_train_loader  # noqa: E402
from voxtrainer.reading.lists import TrainList  # noqa: E402
from voxtrainer.inference.embedding import embed_files  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = torch.device("cpu")
CROPS, DIM = 10, 512  # eval crops per file, embedding size
SCALES = {  # name: (files, trials)
    "VoxCeleb1-O": (4874, 37720),
    "VoxCeleb1-E": (145000, 580000),
}
QUICK_SCALES = {"VoxCeleb1-O": (200, 1500), "VoxCeleb1-E": (600, 6000)}
TARGETS = {"crops_per_s_per_worker": 1500, "vox1_o_score_s": 2.0, "vox1_e_peak_gib": 8.0}


OPTIONS = [  # flag, type, default, help
    ("--threads", int, None, "intra-op threads; none: torch's default"),
    ("--files", int, 400, "audio files to generate"),
    ("--batch_size", int, 200, "speakers per training batch (the seed's)"),
    ("--nPerSpeaker", int, 2, "utterances per speaker in a batch (the seed's)"),
    ("--max_frames", int, 200, "frames per training crop (the seed's)"),
    ("--batches_per_epoch", int, 10, "the train list names each file several times, as different speakers, so "
                                     "that an epoch holds this many batches"),
    ("--loader_workers", str, "0,1,2", "worker counts of the train loader"),
    ("--loader_time", float, 6.0, "seconds of steady-state batches per train-loader measurement (at least 3 batches)"),
    ("--crop_rounds", int, 5, "interleaved rounds of the train_crop_cost measurement"),
    ("--cost_crops", int, 200, "crops per setting and round of the train_crop_cost measurement"),
    ("--eval_frames", int, 200, "frames per eval crop (the seed's --max_frames)"),
    ("--eval_workers", str, "0,1,2", "worker counts of the eval loader"),
    ("--eval_crops_per_batch", int, 40, "crops per forward pass in SpeakerNet.embed_files (40: its GPU setting)"),
    ("--scales", str, "VoxCeleb1-O,VoxCeleb1-E", "scoring scales to measure"),
    ("--blocks", str, "64,128,256,512,1024,4096", "trial block sizes of the scoring_block sweep (VoxCeleb1-O "
                                                  "scale); empty: none"),
    ("--check_trials", int, 2000, "trials whose scores are checked bit for bit against the former scorer"),
    ("--skip", str, "", "comma-separated sections to skip: train,eval,score"),
]


def build_parser():
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark_pipeline", description=__doc__,
                                     formatter_class=Formatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every measurement")
    parser.add_argument("--output", default=None, help="also append the JSON lines to this file")
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument("--score_worker", default=None, help=argparse.SUPPRESS)  # internal: one scoring process
    return parser


# ---------------------------------------------------------------------------------------------
# The network of almost no arithmetic

class NullNet(torch.nn.Module):
    """Stands in for the embedding network on a GPU, where its arithmetic costs next to nothing:
    the training forward reads one sample per crop, evaluation returns zero embeddings. Around it
    runs the trainer's own code: tools.common.take_step (voxtrainer.training.step.train_step) and
    SpeakerNet.embed_files (evaluate_list's embedding pass). `calls` times embed_crops's calls."""

    protocol = "2020"  # the audio protocol embed_files cuts eval crops by, as SpeakerNet's default
    model_name = "NullNet"

    def __init__(self, nOut=DIM):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.nOut = nOut
        self.calls = []

    @property
    def device(self):
        return self.weight.device

    def forward(self, data, label):
        loss = (data[..., 0].mean() * self.weight).sum()
        return loss, torch.zeros(())

    def embed_crops(self, crops):
        self.calls.append((time.perf_counter(), crops.shape[0]))
        return crops.new_zeros(crops.shape[0], self.nOut)

    def embed_files(self, paths, eval_frames, num_eval=10, num_workers=0, crops_per_batch=None, progress=True):
        """SpeakerNet's pass over files (voxtrainer.inference.embedding), every crop through embed_crops."""
        return embed_files(self, paths, eval_frames, num_eval, num_workers, crops_per_batch, progress,
                           embed=self.embed_crops)

    def check_eval_frames(self, eval_frames, flag="--eval_frames"):
        return 1  # any crop: nothing is computed from it


# ---------------------------------------------------------------------------------------------
# Generated audio

def write_audio_set(root, files, seed=0):
    """`files` 16 kHz int16 wav files of uniform noise under root/wav/idNNNNN/video/NNNNN.wav,
    durations 4 + exponential(mean 4) s capped at 20 s (mean about 8 s, as VoxCeleb's). Returns
    (relative names, durations in seconds)."""
    rng = numpy.random.default_rng(seed)
    durations = numpy.minimum(4.0 + rng.exponential(4.0, files), 20.0)
    names = []
    for index, seconds in enumerate(durations):
        name = "id%05d/video%02d/%05d.wav" % (index // 4, index % 4, index)
        path = os.path.join(root, "wav", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        samples = rng.integers(-4000, 4000, int(seconds * SAMPLE_RATE), dtype=numpy.int16)
        soundfile.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
        names.append(name)
    return names, durations


def write_train_list(path, names, speakers, per_speaker):
    """`speakers` x `per_speaker` lines `speaker file`, cycling through the files."""
    with open(path, "w") as handle:
        for line in range(speakers * per_speaker):
            handle.write("spk%05d %s\n" % (line // per_speaker, names[line % len(names)]))


def check_crops(train_list, max_frames, crops):
    """Training crops by load_random_crop (seeking, one rng per crop) against the original's loadWAV
    (whole file, the global `random`), the same seeds: the number of crops that differ."""
    state = random.getstate()
    differing = 0
    try:
        for seed in range(crops):
            path = train_list.files[seed % len(train_list.files)]
            random.seed(seed)
            reference = loadWAV(path, max_frames, evalmode=False)[0].numpy()
            crop = load_random_crop(path, max_frames, random.Random(seed))
            differing += not (crop.dtype == reference.dtype and numpy.array_equal(crop, reference))
    finally:
        random.setstate(state)
    return differing


# ---------------------------------------------------------------------------------------------
# Loaders

@contextlib.contextmanager
def measured():
    """Wall time, this process's CPU time, finished children's CPU time and this process's peak RSS
    of a block."""
    memory = PeakMemory(CPU)
    memory.reset()
    result = {}
    wall, cpu, children = time.perf_counter(), cpu_seconds(), children_cpu_seconds()
    yield result
    gc.collect()  # loader workers exit with their iterator: their CPU time is then counted
    result.update(memory.read(), wall=time.perf_counter() - wall, cpu=cpu_seconds() - cpu,
                  children_cpu=children_cpu_seconds() - children)


def measure_train_loader(train_list, workers, args, report, min_batches=3):
    net = NullNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    times, crops_per_batch, epoch = [], 0, 0
    with measured() as total:
        loader, sampler = make_train_loader(train_list, args.max_frames, args.nPerSpeaker, 100, args.batch_size,
                                            workers, seed=0)
        started = time.perf_counter()
        while len(times) < min_batches + 1 or times[-1] - times[0] < args.loader_time:
            sampler.set_epoch(epoch)
            for data, label in loader:
                take_step(net, data, label, optimizer, scaler, mixedprec=False)
                times.append(time.perf_counter())
                crops_per_batch = data.shape[0] * data.shape[1]
            epoch += 1
        batches_per_epoch = len(sampler)
        del loader, sampler
    steady = (len(times) - 1) * crops_per_batch / (times[-1] - times[0])
    all_crops = len(times) * crops_per_batch
    per_worker = steady / max(workers, 1)
    worker_cpu = total["children_cpu"] if workers else total["cpu"]
    return report.emit(
        "train_loader", workers=workers, batch_shape=[args.batch_size, args.nPerSpeaker, crop_samples(args.max_frames)],
        batches=len(times), epochs=epoch, batches_per_epoch=batches_per_epoch,
        crops_per_s=round(steady, 1), crops_per_s_per_worker=round(per_worker, 1),
        crops_per_worker_cpu_s=round(all_crops / worker_cpu, 1) if worker_cpu > 0 else None,
        first_batch_s=round(times[0] - started, 3), wall_s=round(total["wall"], 2),
        main_cpu_s=round(total["cpu"], 2), worker_cpu_s=round(total["children_cpu"], 2), cpu_share=cpu_share(total),
        peak_rss_mb=total["peak_rss_mb"], largest_child_peak_rss_mb=children_peak_rss_mb() if workers else None,
        target_crops_per_s_per_worker=TARGETS["crops_per_s_per_worker"],
        note="steady state: crops after the first batch / time after the first batch; per worker: divided by "
             "the worker processes (by the main process with 0 workers); per worker CPU s: all crops / the "
             "workers' CPU time (the main process's with 0 workers), which other jobs on the machine hardly change")


def measure_crop_cost(train_list, args, report):
    """Crops/s of TrainDataset plain and with each recipe option, measured side by side."""
    datasets = {
        "plain": TrainDataset(train_list, args.max_frames),
        "speed_perturb": TrainDataset(train_list, args.max_frames, speed_perturb=True,
                                      num_classes=train_list.num_speakers),
        "dither": TrainDataset(train_list, args.max_frames, dither=1.0),
    }
    groups = [Group((seed % len(train_list.files),), train_list.labels[seed % len(train_list.files)], seed)
              for seed in range(args.cost_crops)]
    seconds = {name: float("inf") for name in datasets}
    for _ in range(args.crop_rounds):
        for name, dataset in datasets.items():
            seconds[name] = min(seconds[name], loader_seconds_per_crop(dataset, groups, 1))
    rates = {name: round(1 / value, 1) for name, value in seconds.items()}
    return report.emit(
        "train_crop_cost", max_frames=args.max_frames, crops=args.cost_crops, rounds=args.crop_rounds,
        crops_per_s=rates,
        relative_to_plain={name: round(seconds["plain"] / value, 3) for name, value in seconds.items()},
        note="one process, one utterance per group; the rate of each setting is its best round; speed_perturb "
             "draws 0.9, 1.0, 1.1 alike, so two crops in three are resampled")


def measure_eval_loader(paths, workers, args, report):
    net = NullNet()
    with measured() as total:
        embeddings = net.embed_files(paths, args.eval_frames, num_eval=CROPS, num_workers=workers,
                                     crops_per_batch=args.eval_crops_per_batch, progress=False)
    files = embeddings.shape[0]
    (first, first_crops), (last, _) = net.calls[0], net.calls[-1]
    steady_files = files - first_crops // CROPS
    return report.emit(
        "eval_loader", workers=workers, files=files, crops_per_file=CROPS, eval_frames=args.eval_frames,
        files_per_batch=first_crops // CROPS, files_per_s=round(files / total["wall"], 1),
        steady_files_per_s=round(steady_files / (last - first), 1) if last > first else None,
        wall_s=round(total["wall"], 3), main_cpu_s=round(total["cpu"], 2), worker_cpu_s=round(total["children_cpu"], 2),
        cpu_share=cpu_share(total), peak_rss_mb=total["peak_rss_mb"],
        largest_child_peak_rss_mb=children_peak_rss_mb() if workers else None,
        note="files_per_s: all files / wall time, worker start-up included (as evaluate_list pays it); "
             "steady: after the first batch")


# ---------------------------------------------------------------------------------------------
# Scoring, one process per scale

def gathered_scores(embeddings, enrol, test):
    """The former scorer, as it was written: every trial's crops gathered at once, then scored."""
    first, second = embeddings[enrol], embeddings[test]
    return -torch.cdist(first + 1e-6, second, compute_mode="donot_use_mm_for_euclid_dist").flatten(-2).mean(dim=-1)


def timed_scores(embeddings, enrol, test, block):
    memory = PeakMemory(CPU)
    memory.reset()
    wall, cpu = time.perf_counter(), cpu_seconds()
    scores = scoring.trial_scores(embeddings, enrol, test, block=block)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return scores, wall, cpu, memory.read()["peak_rss_mb"]


def score_worker(spec):
    """One scale, in its own process (python -m tools.benchmark_pipeline --score_worker JSON): prints
    the `scoring` line and, for each of spec['blocks'], a `scoring_block` line."""
    spec = json.loads(spec)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    files, trials = spec["files"], spec["trials"]
    rss_start = process_memory_mb("VmRSS")
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    embeddings = torch.randn(files, CROPS, DIM, generator=generator)
    enrol = torch.randint(0, files, (trials,), generator=generator)
    test = torch.randint(0, files, (trials,), generator=generator)
    made_s = time.perf_counter() - started
    rss_data, peak_making = process_memory_mb("VmRSS"), process_memory_mb("VmHWM")
    scores, wall, cpu, peak = timed_scores(embeddings, enrol, test, scoring.TRIALS_PER_BLOCK)
    checked = min(spec["check_trials"], trials)
    identical = torch.equal(scores[:checked], gathered_scores(embeddings, enrol[:checked], test[:checked]))
    lifetime_peak = max(peak_making, process_memory_mb("VmHWM"))  # VmHWM was reset in between
    records = [dict(
        measurement="scoring", scale=spec["scale"], files=files, trials=trials, crops=CROPS, dim=DIM,
        dtype="float32", crop_pairs=trials * CROPS * CROPS, block=scoring.TRIALS_PER_BLOCK,
        threads=torch.get_num_threads(), score_s=round(wall, 3), cpu_s=round(cpu, 3),
        cpu_share=round(cpu / max(wall, 1e-9), 2), trials_per_s=round(trials / wall, 1),
        ns_per_pair_dim=round(cpu * 1e9 / (trials * CROPS * CROPS * DIM), 3),
        embeddings_mb=round(embeddings.numel() * 4 / 2 ** 20, 1), make_data_s=round(made_s, 2),
        rss_at_start_mb=rss_start, rss_with_data_mb=rss_data, peak_rss_mb=peak,
        process_peak_rss_mb=lifetime_peak, scores_finite=bool(torch.isfinite(scores).all()),
        checked_trials=checked, identical_to_gathered=identical,
        note="score_s: trial_scores alone (random data made before); peak_rss_mb: VmHWM of the scoring, the "
             "embeddings included (reset before it); process_peak_rss_mb: the process's lifetime peak, the "
             "bit-for-bit check's gathered copy of --check_trials trials included")]
    for block in spec["blocks"]:
        best = None
        for _ in range(spec["repeats"]):
            _, wall, cpu, peak = timed_scores(embeddings, enrol, test, block)
            if best is None or wall < best[0]:
                best = (wall, cpu, peak)
        records.append(dict(measurement="scoring_block", scale=spec["scale"], trials=trials, block=block,
                            threads=torch.get_num_threads(), repeats=spec["repeats"],
                            score_s=round(best[0], 3), cpu_s=round(best[1], 3),
                            trials_per_s=round(trials / best[0], 1), peak_rss_mb=best[2],
                            default=block == scoring.TRIALS_PER_BLOCK))
    for record in records:
        print(json.dumps(record), flush=True)


def measure_scoring(scale, files, trials, blocks, args, report):
    spec = dict(scale=scale, files=files, trials=trials, blocks=blocks, repeats=1 if args.quick else 2,
                check_trials=args.check_trials, threads=args.threads)
    command = [sys.executable, "-m", "tools.benchmark_pipeline", "--score_worker", json.dumps(spec)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("error: the %s scoring process failed (exit status %d):\n%s" % (
            scale, result.returncode, result.stderr.strip()))
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    emitted = []
    for record in records:
        if record["measurement"] == "scoring":
            record["process_s"] = round(time.perf_counter() - started, 1)
        emitted.append(report.emit(record.pop("measurement"), **record))
    return emitted


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.score_worker:
        return score_worker(args.score_worker)
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.files, args.batch_size, args.batches_per_epoch = min(args.files, 12), min(args.batch_size, 4), 2
        args.loader_time = min(args.loader_time, 0.2)
        args.check_trials = min(args.check_trials, 500)
        args.crop_rounds, args.cost_crops = min(args.crop_rounds, 1), min(args.cost_crops, 8)
    skip = set(filter(None, args.skip.split(",")))
    report = Reporter(args.output, CPU)
    info, short = describe_device(CPU)
    report.emit("device", **info)
    report.summary_device = short
    targets, summary = {}, {}

    with tempfile.TemporaryDirectory(prefix="benchmark_pipeline_") as root:
        if not {"train", "eval"} <= skip:
            begun = time.perf_counter()
            names, durations = write_audio_set(root, args.files)
            report.emit("audio_set", files=len(names), seconds_mean=round(float(durations.mean()), 2),
                        seconds_min=round(float(durations.min()), 2), seconds_max=round(float(durations.max()), 2),
                        hours=round(float(durations.sum()) / 3600, 2), sample_rate=SAMPLE_RATE, subtype="PCM_16",
                        mb=round(sum(os.path.getsize(os.path.join(root, "wav", n)) for n in names) / 2 ** 20, 1),
                        write_s=round(time.perf_counter() - begun, 2))

        if "train" not in skip:
            list_path = os.path.join(root, "train_list.txt")
            write_train_list(list_path, names, args.batch_size * args.batches_per_epoch, args.nPerSpeaker)
            train_list = TrainList(list_path, os.path.join(root, "wav"))
            checked = 50 if args.quick else 1000
            differing = check_crops(train_list, args.max_frames, checked)
            report.emit("crop_check", crops=checked, max_frames=args.max_frames, differing=differing,
                        identical=differing == 0)
            targets["training crops identical to the original's loadWAV"] = differing == 0
            rates = {}
            for workers in [int(w) for w in args.loader_workers.split(",") if w]:
                rates[workers] = measure_train_loader(train_list, workers, args, report)["crops_per_s_per_worker"]
            summary["train_crops_per_s_per_worker"] = rates
            cost = measure_crop_cost(train_list, args, report)
            summary["speed_perturb_relative_crop_rate"] = cost["relative_to_plain"]["speed_perturb"]
            for workers, rate in rates.items():
                if workers:
                    targets["train loader, %d worker(s): >= %d crops/s per worker" % (
                        workers, TARGETS["crops_per_s_per_worker"])] = rate >= TARGETS["crops_per_s_per_worker"]

        if "eval" not in skip:
            paths = [os.path.join(root, "wav", name) for name in names]
            summary["eval_files_per_s"] = {
                workers: measure_eval_loader(paths, workers, args, report)["files_per_s"]
                for workers in [int(w) for w in args.eval_workers.split(",") if w]}

    if "score" not in skip:
        scales = QUICK_SCALES if args.quick else SCALES
        blocks = [int(b) for b in args.blocks.split(",") if b]
        if args.quick:
            blocks = blocks[:2]
        for scale in [s for s in args.scales.split(",") if s]:
            files, trials = scales[scale]
            records = measure_scoring(scale, files, trials, blocks if scale == "VoxCeleb1-O" else [], args, report)
            main_record = records[0]
            summary["%s score_s" % scale] = main_record["score_s"]
            summary["%s process_peak_rss_mb" % scale] = main_record["process_peak_rss_mb"]
            targets["%s scores identical to the former scorer" % scale] = main_record["identical_to_gathered"]
            if args.quick:
                continue
            if scale == "VoxCeleb1-O":
                targets["VoxCeleb1-O scoring < %g s" % TARGETS["vox1_o_score_s"]] = \
                    main_record["score_s"] < TARGETS["vox1_o_score_s"]
            if scale == "VoxCeleb1-E":
                targets["VoxCeleb1-E scoring peak < %g GiB" % TARGETS["vox1_e_peak_gib"]] = \
                    main_record["process_peak_rss_mb"] < TARGETS["vox1_e_peak_gib"] * 1024

    report.emit("summary", total_s=round(time.perf_counter() - started, 1), quick=args.quick, **summary,
                targets_met=targets)


if __name__ == "__main__":
    main()
