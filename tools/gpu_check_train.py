"""tools/gpu_check's training measurements: the trainer's own step (voxtrainer.training.step.train_step) per
network and variant (precision, layout, cuDNN benchmark, torch.compile mode), and the epoch fed
by the trainer's loader per network and precision. Every variant is built as the trainer builds
it (voxtrainer.precision); a variant that fails is a finding (an `error` field), not the end."""

import os
import time
from typing import NamedTuple

import torch

from tools.benchmark_pipeline import write_audio_set, write_train_list
from voxtrainer.cli.flags import default_nOut
from voxtrainer.reading.audio import crop_samples
from voxtrainer.training.compiled import CompiledTraining
from voxtrainer.reading.datasets import make_train_loader
from voxtrainer.reading.lists import TrainList
from voxtrainer.network import SpeakerNet
from voxtrainer.plugins import load_plugin
from voxtrainer.precision import (apply_backend_settings, apply_cudnn_benchmark, fused_optimizer,
                                  memory_format_for, precision_named)
from voxtrainer.training.step import batch_to_device, train_step

SEED_MODELS = ("ResNetSE34L", "VGGVox")  # the seed's shape: angleproto, 200 speakers x 2 x 2 s
WESPEAKER_MODELS = ("ResNet34", "ECAPA_TDNN", "CAMPPlus", "ERes2Net", "ReDimNet2", "ResNet221", "ResNet293")
WESPEAKER_CLASSES = 5994  # WeSpeaker's shape: aamsoftmax over VoxCeleb2's speakers, 128 x 2 s


class Variant(NamedTuple):
    name: str
    precision: str
    layout: str          # "contiguous", "channels_last" or "declared" (the model file's CUDA_MEMORY_FORMAT)
    compile_mode: str    # "" for eager
    cudnn_benchmark: bool


VARIANTS = (Variant("fp32", "fp32", "contiguous", "", False),
            Variant("fp32_channels_last", "fp32", "channels_last", "", False),
            Variant("tf32", "tf32", "declared", "", False),
            Variant("bf16", "bf16", "declared", "", False),
            Variant("fp16", "fp16", "declared", "", False),
            Variant("bf16_cudnn_benchmark", "bf16", "declared", "", True),
            Variant("compiled", "bf16", "declared", "default", False),
            Variant("compiled_cudagraphs", "bf16", "declared", "reduce-overhead", False))
EPOCH_PRECISIONS = ("fp32", "bf16")  # the epoch fed by the loader: the seed's arithmetic and the fastest


def present_models():
    """The networks measured: the seed's, then WeSpeaker's whose model file exists here."""
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
    return SEED_MODELS + tuple(name for name in WESPEAKER_MODELS if os.path.isfile(os.path.join(folder, name + ".py")))


def shape_of(model, quick):
    """(trainfunc, groups per batch, utterances per group, frames): each network's published shape."""
    if model in SEED_MODELS:
        return "angleproto", 4 if quick else 200, 2, 100 if quick else 200
    return "aamsoftmax", 4 if quick else 128, 1, 100 if quick else 200


def build(model, variant, device, quick):
    """(step function, utterances per step) of one variant, as the trainer sets it up."""
    trainfunc, groups, per_group, frames = shape_of(model, quick)
    precision = precision_named(variant.precision)
    apply_backend_settings(precision, device.type)
    apply_cudnn_benchmark(variant.cudnn_benchmark, device.type)
    layout = memory_format_for(model, device.type, "auto" if variant.layout == "declared" else variant.layout)
    torch.manual_seed(0)
    net = SpeakerNet(model=model, trainfunc=trainfunc, nOut=default_nOut(model),
                     encoder_type="SAP", nClasses=WESPEAKER_CLASSES, margin=0.2, scale=32)
    net = net.to(device, memory_format=layout).train()
    optimizer = load_plugin("optimizer", "adam")(net.parameters(), lr=0.001,
                                                 fused=fused_optimizer(precision, device.type))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.loss_scaling and device.type == "cuda")
    model_step = CompiledTraining(net, variant.compile_mode, device.type).step if variant.compile_mode else \
        (lambda *args: train_step(net, *args))
    return net, (lambda data, label, watch=None: model_step(data, label, optimizer, scaler, precision.autocast_dtype,
                                                           watch)), (trainfunc, groups, per_group, frames)


def random_batch(groups, per_group, frames, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(-3000, 3000, (groups, per_group, crop_samples(frames)), generator=generator).float()
    return data.to(device), torch.arange(groups, device=device) % WESPEAKER_CLASSES


def peak_memory_mb(device):
    return round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1) if device.type == "cuda" else None


def timed(step, clock, budget_s, warmup=2, at_least=3):
    """Steps after `warmup` untimed ones until the budget is spent: (steps, seconds)."""
    for _ in range(warmup):
        step()
    clock.sync()
    steps, start = 0, clock.now()
    while steps < at_least or clock.now() - start < budget_s:
        step()
        steps += 1
    return steps, clock.now() - start


def measure_step(model, variant, device, quick, budget_s, report, clock):
    """One `train_step` line: utterances/s and peak GPU memory of one network in one variant."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    fields = dict(model=model, variant=variant.name, precision=variant.precision, layout=variant.layout,
                  compile_mode=variant.compile_mode or None, cudnn_benchmark=variant.cudnn_benchmark)
    try:
        _, step, (trainfunc, groups, per_group, frames) = build(model, variant, device, quick)
        data, label = random_batch(groups, per_group, frames, device)
        steps, seconds = timed(lambda: step(data, label), clock, budget_s)
    except Exception as error:  # a variant that fails here (compile, memory) is a finding
        return report.emit("train_step", error="%s: %s" % (type(error).__name__, str(error).strip()
                                                           .splitlines()[0][:300] if str(error).strip() else ""),
                           **fields)
    finally:
        apply_cudnn_benchmark(False, device.type)
    return report.emit("train_step", **fields, trainfunc=trainfunc, batch=[groups, per_group, frames], steps=steps,
                       utt_per_s=round(steps * groups * per_group / seconds, 1), peak_gpu_mb=peak_memory_mb(device))


def generated_train_list(root, files, groups, per_group):
    """A train list on `files` generated VoxCeleb-like files (4-20 s): enough speakers for 4 batches."""
    names, _ = write_audio_set(root, files)
    path = os.path.join(root, "train_list.txt")
    write_train_list(path, names, groups * 4, max(per_group, 8))
    return TrainList(path, os.path.join(root, "wav"))


def measure_epoch(model, precision, train_list, device, quick, budget_s, report, clock):
    """The epoch fed by the trainer's loader (one worker per core, pinned, prefetching), through
    the trainer's divergence watch: {"measurement": "epoch", model, precision, utt_per_s, peak_gpu_mb}."""
    variant = Variant(precision, precision, "declared", "", False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        _, step, (_, groups, per_group, frames) = build(model, variant, device, quick)
        from voxtrainer.training.divergence import watch_for
        workers = len(os.sched_getaffinity(0))
        loader, sampler = make_train_loader(train_list, frames, per_group, 100, groups, workers, seed=0,
                                            num_classes=WESPEAKER_CLASSES)
        utterances, steps, epoch, start = 0, 0, 0, None
        while start is None or clock.now() - start < budget_s:
            sampler.set_epoch(epoch)
            watch = watch_for(device)
            for data, label in loader:
                if start is None:  # the loader's start-up (workers, first batches) is start-up, not epoch
                    start = clock.now()
                step(*batch_to_device(data, label, device), watch)
                utterances += data.shape[0] * data.shape[1]
                steps += 1
            if watch is not None:
                watch.check()
            epoch += 1
        clock.sync()
        rate = utterances / (clock.now() - start)
    except Exception as error:
        return report.emit("epoch", model=model, precision=precision, error="%s: %s" % (
            type(error).__name__, str(error).strip().splitlines()[0][:300] if str(error).strip() else ""))
    return report.emit("epoch", model=model, precision=precision, utt_per_s=round(rate, 1),
                       peak_gpu_mb=peak_memory_mb(device), steps=steps, workers=workers)


def loader_rate(train_list, quick, budget_s):
    """Crops/s of the trainer's loader alone (one worker per core), on ResNetSE34L's shape."""
    _, groups, per_group, frames = shape_of("ResNetSE34L", quick)
    workers = len(os.sched_getaffinity(0))
    loader, sampler = make_train_loader(train_list, frames, per_group, 100, groups, workers, seed=0)
    crops, epoch, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < budget_s:
        sampler.set_epoch(epoch)
        for data, _ in loader:
            crops += data.shape[0] * data.shape[1]
        epoch += 1
    return crops / (time.perf_counter() - start), workers
