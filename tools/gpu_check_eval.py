"""tools/gpu_check's evaluation timings: a whole list scored as `--eval` scores it
(voxtrainer.scoring.evaluation.evaluate_list: every file embedded from 10 crops of 3 s, the seed's
protocol, batched on the device with loader workers reading ahead, then every trial scored), for
lists the size of VoxCeleb1-O (4,874 files, 37,720 trials) and VoxCeleb1-E (145,160 files,
579,818 trials).

The files are links to a few hundred generated VoxCeleb-like files (4-20 s, mean about 8 s, as
VoxCeleb1's), so that writing them costs seconds; every link is read and embedded like a file of
its own. Where a list does not fit its time budget, a part of it (its first files and the trials
among them) is timed and the whole is extrapolated in proportion to its files: the line says so
(`extrapolated`, `timed_files`)."""

import os
import time

import numpy

from tools.benchmark_pipeline import write_audio_set
from voxtrainer.scoring.evaluation import evaluate_list

LISTS = (("VoxCeleb1-O", 4874, 37720), ("VoxCeleb1-E", 145160, 579818))
DISTINCT_FILES = 400
EVAL_FRAMES = 300


def write_linked_list(root, wav, distinct, files, trials, seed=0):
    """`files` links under root/links (cycling through the `distinct` generated names under `wav`)
    and a test list of `trials` random pairs among them. Returns (list path, test path)."""
    rng = numpy.random.default_rng(seed)
    names = []
    for index in range(files):
        name = "id%05d/%06d.wav" % (index // 50, index)
        path = os.path.join(root, "links", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(os.path.join(wav, distinct[index % len(distinct)]), path)
        names.append(name)
    enrol = rng.integers(0, files, trials)
    test = (enrol + rng.integers(1, files, trials)) % files  # never a file against itself
    list_path = os.path.join(root, "list_%d.txt" % files)
    with open(list_path, "w") as handle:
        for position, (a, b) in enumerate(zip(enrol, test)):
            handle.write("%d %s %s\n" % (position % 2, names[a], names[b]))
    return list_path, os.path.join(root, "links")


def files_per_second(net, root, distinct, workers, clock, quick):
    """Files scored per second, from a probe of a few hundred files (loader start-up included)."""
    probe = 8 if quick else 400
    list_path, test_path = write_linked_list(os.path.join(root, "probe"), os.path.join(root, "wav"), distinct, probe,
                                             probe * 4)
    start = clock.now()
    evaluate_list(net, list_path, test_path, EVAL_FRAMES, num_workers=workers, progress=False)
    clock.sync()
    return probe / max(clock.now() - start, 1e-6)


def measure_lists(net, model, root, budget_s, workers, report, clock, quick):
    """One `evaluation` line per list size: seconds for the whole list, measured or extrapolated."""
    distinct, _ = write_audio_set(root, 24 if quick else DISTINCT_FILES)
    lists = tuple((name, max(8, files // 300), max(8, trials // 300)) for name, files, trials in LISTS) if quick \
        else LISTS
    rate = files_per_second(net, root, distinct, workers, clock, quick)
    for name, files, trials in lists:
        started = time.perf_counter()
        timed_files = min(files, max(8, int(rate * budget_s / len(lists))))
        timed_trials = trials if timed_files == files else int(trials * timed_files / files)
        part = os.path.join(root, name)
        list_path, test_path = write_linked_list(part, os.path.join(root, "wav"), distinct, timed_files, timed_trials,
                                                 seed=1)
        clock.sync()
        start = clock.now()
        evaluation = evaluate_list(net, list_path, test_path, EVAL_FRAMES, num_workers=workers, progress=False)
        clock.sync()
        seconds = clock.now() - start
        whole = seconds * files / timed_files
        report.emit("evaluation", list=name, model=model, files=files, trials=trials, eval_frames=EVAL_FRAMES,
                    num_eval=10, workers=workers, timed_files=timed_files, timed_trials=timed_trials,
                    timed_s=round(seconds, 2), seconds=round(whole, 1), extrapolated=timed_files < files,
                    files_per_s=round(timed_files / seconds, 1), eer=round(float(evaluation.eer), 2),
                    section_s=round(time.perf_counter() - started, 1))
