"""One optimiser step as every caller (the trainer, the benchmarks, the GPU check) takes it: the
batch on the device, autocast in the run's precision, the divergence check, loss scaling."""

import torch
import torch.distributed as dist

from voxtrainer.training.distributed import finite_on_all_ranks, world
from voxtrainer.training.divergence import TrainingDiverged
from voxtrainer.runtime import autocast_dtype


def batch_to_device(data, label, device):
    """A loader batch on the training device, the crops as float32: sent as int16 when that is
    lossless (voxtrainer.reading.datasets.TrainDataset), they are converted there, which is exact. Copies
    from pinned memory to CUDA run asynchronously."""
    data, label = data.to(device, non_blocking=True), label.to(device, non_blocking=True)
    return (data if data.is_floating_point() else data.float()), label


def finite_check(loss):
    """Starts asking whether `loss` is finite on every rank; returns a function that answers.

    On the CPU the answer is known at once. On CUDA the flag is copied to the host behind the
    forward pass and waited for with an event, so that asking once the backward pass is queued
    waits for the forward pass only, never for the whole queue: the GPU stays busy."""
    if loss.device.type != "cuda":
        known = finite_on_all_ranks(loss)
        return lambda: known
    flag = torch.isfinite(loss.detach()).float().reshape(1)
    if world()[1] > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    answer = torch.empty(1, pin_memory=True)
    answer.copy_(flag, non_blocking=True)
    ready = torch.cuda.Event()
    ready.record()

    def finite():
        ready.synchronize()
        return bool(answer.item())
    return finite


def train_step(model, data, label, optimizer, scaler, mixedprec, watch=None):
    """One optimiser step on a batch already on the device: (loss tensor, metric). `mixedprec`:
    False (fp32), True (the device's --mixedprec dtype: fp16 on CUDA, bf16 on the CPU) or the torch
    dtype of autocast (precision.TrainPrecision.autocast_dtype).

    Without a `watch`, a non-finite loss (agreed by every rank) raises TrainingDiverged before the
    weights change; the check waits for the forward pass only (finite_check). With a `watch`
    (divergence.DivergenceWatch, on CUDA) the step does not wait for the device at all: the watch
    reads the losses every few steps. The loss stays a tensor and the metric is a float or a tensor
    on the device (float() reads either). What still waits is outside it: GradScaler's overflow
    check (fp16 on CUDA) and the pair losses' mining and EER, which need the host."""
    device_type = data.device.type
    dtype = mixedprec if isinstance(mixedprec, torch.dtype) else autocast_dtype(device_type)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type, dtype=dtype, enabled=bool(mixedprec)):
        loss, metric = model(data, label)
    if watch is not None:
        scaler.scale(loss).backward()
        watch.observe(loss)
    else:
        finite = finite_check(loss)
        scaler.scale(loss).backward()
        if not finite():
            raise TrainingDiverged("loss became %s" % loss.item())
    scaler.step(optimizer)
    scaler.update()
    return loss, metric
