"""What --augment costs the training loop.

Two measurements on the same train list and model:

* per crop, the CPU time of cutting a training crop with and without augmentation, against the
  time of a training step (voxtrainer.training.step.train_step: forward, backward, optimizer). Their
  ratio is the rate lost in the worst case, where loading shares the cores with training instead
  of running beside it;
* the training rate (utterances/s of the trainer's epoch loop, voxtrainer.training.loop.run_epoch, with
  its DataLoader workers) with and without augmentation, by the clock and per CPU second.

Run from the repository root:

    python -m tools.benchmark_augment --train_list data/demo/train_list.txt --train_path data/demo/train \\
        --musan_path data/musan_split --rir_path data/RIRS_NOISES/simulated_rirs

Measured figures belong in the README (Augmentation).
"""

import argparse
import gc
import itertools
import time

from tools.common import build_net, cpu_seconds, take_step  # first: sets OMP_WAIT_POLICY before torch

import torch  # noqa: E402

from voxtrainer.reading.augment import Augmenter  # noqa: E402
from voxtrainer.reading.datasets import Group, TrainDataset, make_train_loader  # noqa: E402
from voxtrainer.reading.lists import TrainList  # noqa: E402
from voxtrainer.plugins import load_plugin  # noqa: E402
from voxtrainer.training.loop import run_epoch  # noqa: E402

CPU = torch.device("cpu")


def loader_seconds_per_crop(dataset, groups, repeats):
    """Fastest of `repeats` passes over `groups`: the least disturbed by other processes."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for group in groups:
            dataset[group]
        best = min(best, time.perf_counter() - started)
    return best / sum(len(group.utterances) for group in groups)


def step_seconds_per_crop(net, optimizer, crops, labels, repeats):
    """Fastest of `repeats` training steps (voxtrainer.training.step.train_step, fp32) per crop, after
    one that is not counted: it also allocates memory."""
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    best = float("inf")
    net.train()
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        take_step(net, crops, labels, optimizer, scaler, mixedprec=False)
        if attempt:
            best = min(best, time.perf_counter() - started)
    return best / (crops.shape[0] * crops.shape[1])


def make_training(model, nOut, num_speakers):
    """The net (softmax over the list's speakers) and its Adam optimizer."""
    net = build_net(model, trainfunc="softmax", nOut=nOut, nClasses=num_speakers)
    return net, load_plugin("optimizer", "adam")(net.parameters(), lr=1e-4)


def measure_costs(train_list, augmenter, max_frames, model="ResNetSE34L", nOut=512, crops=32, batch=16,
                  repeats=3):
    """Seconds per crop: loading `plain`, loading `augmented`, a training `step`; and `overhead`,
    the extra loading time as a fraction of the step."""
    groups = [Group((index,), train_list.labels[index], seed) for seed, index in
              zip(range(crops), itertools.cycle(range(len(train_list.files))))]
    plain = TrainDataset(train_list, max_frames)
    augmented = TrainDataset(train_list, max_frames, augmenter)
    loading = {"plain": float("inf"), "augmented": float("inf")}
    for _ in range(repeats):  # interleaved, so a burst of load from elsewhere hits both alike
        loading["plain"] = min(loading["plain"], loader_seconds_per_crop(plain, groups, 1))
        loading["augmented"] = min(loading["augmented"], loader_seconds_per_crop(augmented, groups, 1))
    net, optimizer = make_training(model, nOut, train_list.num_speakers)
    batch_crops = torch.stack([plain[group][0] for group in groups[:batch]])
    labels = torch.tensor([group.label for group in groups[:batch]])
    step = step_seconds_per_crop(net, optimizer, batch_crops, labels, repeats)
    return dict(loading, step=step, overhead=(loading["augmented"] - loading["plain"]) / step)


def training_rate(train_list, augmenter, max_frames, batches, batch_size, workers, model="ResNetSE34L", nOut=512):
    """Utterances per second of the trainer's epoch loop over `batches` batches, by the clock and by
    CPU time (main process and loader workers: what the rate is when no core is free)."""
    net, optimizer = make_training(model, nOut, train_list.num_speakers)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    started, started_cpu = time.perf_counter(), cpu_seconds(children=True)
    loader, _ = make_train_loader(train_list, max_frames, 1, 100, batch_size, workers, seed=0, augment=augmenter)
    run_epoch(net, itertools.islice(loader, batches), optimizer, scaler, CPU, False, 0, show_progress=False)
    wall = time.perf_counter() - started
    del loader  # its workers exit, so their CPU time is counted
    gc.collect()
    return batches * batch_size / wall, batches * batch_size / (cpu_seconds(children=True) - started_cpu)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark_augment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_list", required=True)
    parser.add_argument("--train_path", required=True)
    parser.add_argument("--musan_path", required=True)
    parser.add_argument("--rir_path", required=True)
    parser.add_argument("--model", default="ResNetSE34L")
    parser.add_argument("--nOut", type=int, default=512)
    parser.add_argument("--max_frames", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8, help="batches per training-rate run")
    parser.add_argument("--nDataLoaderThread", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="training-rate runs per setting")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    train_list = TrainList(args.train_list, args.train_path)
    augmenter = Augmenter(args.musan_path, args.rir_path)
    costs = measure_costs(train_list, augmenter, args.max_frames, args.model, args.nOut, batch=args.batch_size)
    print("per crop: loading %.2f ms, with augmentation %.2f ms; training step %.1f ms -> augmentation costs "
          "at most %.1f%% of the training rate" % (1e3 * costs["plain"], 1e3 * costs["augmented"],
                                                   1e3 * costs["step"], 100 * costs["overhead"]))
    rates = {"plain": [], "augmented": []}
    training_rate(train_list, None, args.max_frames, 1, args.batch_size, 0, args.model, args.nOut)  # warm-up
    for _ in range(args.rounds):  # interleaved: load from other processes hits both settings alike
        for name, augment in (("plain", None), ("augmented", augmenter)):
            rates[name].append(training_rate(train_list, augment, args.max_frames, args.batches, args.batch_size,
                                             args.nDataLoaderThread, args.model, args.nOut))
            print("training rate, %s: %.2f utterances/s by the clock, %.2f per CPU second" % (name, *rates[name][-1]))
    for index, kind in enumerate(("by the clock", "per CPU second")):
        print("with augmentation, %s: %.1f%% of the rate without it (best of %d runs each)" % (
            kind, 100 * max(r[index] for r in rates["augmented"]) / max(r[index] for r in rates["plain"]),
            args.rounds))


if __name__ == "__main__":
    main()
