"""The GPU check: one prepared run, for a session that is lent a GPU, of what decides training and
evaluation speed there. One JSON line per measurement:

  device          the GPU, CUDA, torch
  train_step      ResNetSE34L and VGGVox, the seed's shape (batch 200 speakers x 2 utterances x 200
                  frames, angleproto, Adam), in fp32, fp32 channels_last, --mixedprec (fp16 autocast with
                  loss scaling) and compiled (torch.compile of the embedding network): utterances/s and
                  peak GPU memory. Every step is the trainer's own (voxtrainer.training.loop.train_step).
  embedding       embeddings/s of 3 s crops through SpeakerNet.embed_crops, 40 crops a batch (as
                  evaluation batches them on a GPU)
  train_loader    crops/s of the trainer's loader (one worker per core) on generated VoxCeleb-like files
                  (4-20 s, mean about 8 s), against the fp32 step rate: the fraction of an epoch the GPU
                  can be busy
  epoch           steps fed by that loader: utterances/s and the fraction of the step-only rate reached
  summary         the issue's goal (GPU busy at least 90% of an epoch), met or not

    python -m tools.gpu_check                      # on the GPU; --output gpu.jsonl keeps the lines
    python -m tools.gpu_check --device cpu --quick # a smoke run of the same code on a CPU

Each section has a time budget, so that the whole run ends within a few minutes."""

import argparse
import os
import tempfile
import time

from tools.common import build_net, take_step  # first: process settings before torch

import torch  # noqa: E402

from tools.benchmark import Clock, Reporter, describe_device  # noqa: E402
from tools.benchmark_pipeline import write_audio_set, write_train_list  # noqa: E402
from voxtrainer.reading.audio import crop_samples  # noqa: E402
from voxtrainer.reading.datasets import make_train_loader  # noqa: E402
from voxtrainer.reading.lists import TrainList  # noqa: E402
from voxtrainer.plugins import load_plugin  # noqa: E402
from voxtrainer.runtime import preferred_memory_format, resolve_device  # noqa: E402

MODELS = ("ResNetSE34L", "VGGVox")
VARIANTS = ("fp32", "channels_last", "mixedprec", "compiled")
BUSY_TARGET = 0.9


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and budgets: a smoke run")
    parser.add_argument("--output", default=None, help="also append the JSON lines to this file")
    return parser


def sizes(quick):
    """(speakers per batch, frames per crop, seconds per timed section, generated files)."""
    return (4, 100, 0.5, 24) if quick else (200, 200, 15.0, 800)


def random_batch(speakers, frames, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(-3000, 3000, (speakers, 2, crop_samples(frames)), generator=generator).float()
    return data.to(device), torch.arange(speakers, device=device)


def prepare(model, variant, device):
    """The net, and its step settings, for one variant."""
    layout = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    if device.type == "cpu" and variant == "fp32":
        layout = preferred_memory_format(device)
    net = build_net(model, device=device, memory_format=layout)
    if variant == "compiled":
        net.__S__ = torch.compile(net.__S__)
    optimizer = load_plugin("optimizer", "adam")(net.parameters(), lr=0.001)  # the trainer's default
    mixedprec = variant == "mixedprec"
    scaler = torch.amp.GradScaler(device.type, enabled=mixedprec and device.type == "cuda")
    return net, optimizer, scaler, mixedprec


def timed_steps(step, clock, budget_s, at_least=3):
    """Steps after a warm-up one until the budget is spent: (steps, seconds)."""
    step()
    steps, start = 0, clock.now()
    while steps < at_least or clock.now() - start < budget_s:
        step()
        steps += 1
    return steps, clock.now() - start


def peak_memory_mb(device):
    return round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1) if device.type == "cuda" else None


def measure_train_step(model, variant, device, quick, report, clock):
    speakers, frames, budget, _ = sizes(quick)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        net, optimizer, scaler, mixedprec = prepare(model, variant, device)
        data, label = random_batch(speakers, frames, device)
        steps, seconds = timed_steps(lambda: take_step(net, data, label, optimizer, scaler, mixedprec), clock, budget)
    except Exception as error:  # a variant that fails here (compile, say) is a finding, not the end of the check
        return report.emit("train_step", model=model, variant=variant, error=str(error).strip().splitlines()[0][:300])
    return report.emit("train_step", model=model, variant=variant, batch=[speakers, 2, frames], steps=steps,
                       utt_per_s=round(steps * speakers * 2 / seconds, 1), peak_gpu_mb=peak_memory_mb(device))


def measure_embedding(model, device, quick, report, clock):
    _, _, budget, _ = sizes(quick)
    net = build_net(model, device=device, memory_format=preferred_memory_format(device)).eval()
    crops, _ = random_batch(20 if device.type == "cuda" else 4, 300, device)
    crops = crops.reshape(-1, crops.shape[-1])
    steps, seconds = timed_steps(lambda: net.embed_crops(crops), clock, budget)
    return report.emit("embedding", model=model, crops_per_batch=crops.shape[0], crop_s=3,
                       embeddings_per_s=round(steps * crops.shape[0] / seconds, 1))


def loader_for(train_list, speakers, frames, workers):
    return make_train_loader(train_list, frames, 2, 100, speakers, workers, seed=0)


def measure_loader_and_epoch(device, quick, step_rate, report, clock):
    """The loader alone, then steps fed by it; step_rate (utterances/s of fp32 ResNetSE34L steps on
    in-memory batches) is what the GPU could do if never kept waiting."""
    speakers, frames, budget, files = sizes(quick)
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as root:
        names, _ = write_audio_set(root, files)
        list_path = os.path.join(root, "train_list.txt")
        write_train_list(list_path, names, speakers * 4, 8)
        train_list = TrainList(list_path, os.path.join(root, "wav"))
        loader, sampler = loader_for(train_list, speakers, frames, workers)
        crops, start, epoch = 0, time.perf_counter(), 0
        while time.perf_counter() - start < budget:
            sampler.set_epoch(epoch)
            for data, _ in loader:
                crops += data.shape[0] * data.shape[1]
            epoch += 1
        loader_rate = crops / (time.perf_counter() - start)
        report.emit("train_loader", workers=workers, crops_per_s=round(loader_rate, 1),
                    crops_per_s_per_worker=round(loader_rate / workers, 1),
                    gpu_busy_bound=round(min(1.0, loader_rate / step_rate), 3))

        net, optimizer, scaler, mixedprec = prepare("ResNetSE34L", "fp32", device)
        utterances, steps, epoch = 0, 0, 0
        start = clock.now()
        while clock.now() - start < budget or steps < 3:
            sampler.set_epoch(epoch)
            for data, label in loader:
                take_step(net, data, label, optimizer, scaler, mixedprec)
                utterances += data.shape[0] * data.shape[1]
                steps += 1
            epoch += 1
        rate = utterances / (clock.now() - start)
    busy = min(1.0, rate / step_rate)
    return report.emit("epoch", model="ResNetSE34L", workers=workers, steps=steps, utt_per_s=round(rate, 1),
                       step_only_utt_per_s=round(step_rate, 1), gpu_busy=round(busy, 3))


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    clock = Clock(device)
    report = Reporter(args.output, device)
    info, short = describe_device(device)
    report.emit("device", **info)
    report.summary_device = short
    started = time.perf_counter()
    rates = {}
    for model in MODELS:
        for variant in VARIANTS:
            rates[model, variant] = measure_train_step(model, variant, device, args.quick, report, clock).get("utt_per_s")
        measure_embedding(model, device, args.quick, report, clock)
    epoch = measure_loader_and_epoch(device, args.quick, rates["ResNetSE34L", "fp32"], report, clock)
    report.emit("summary", total_s=round(time.perf_counter() - started, 1),
                train_utt_per_s={"%s %s" % key: value for key, value in rates.items()},
                gpu_busy=epoch["gpu_busy"], target_gpu_busy=BUSY_TARGET, met=epoch["gpu_busy"] >= BUSY_TARGET)


if __name__ == "__main__":
    main()
