"""Training: one step, one epoch, and the loop that trains, evaluates and saves every
`test_interval` epochs and resumes where it stopped. Every caller (the trainer, the benchmarks)
trains through `train_step`."""

import math
import os
import time
from typing import NamedTuple

import torch
from tqdm import tqdm

from voxtrainer import checkpoints, log
from voxtrainer.atomic import write_text
from voxtrainer.distributed import RANK_DUMP_ENV, broadcast_buffers, dump_rank_state, finite_on_all_ranks
from voxtrainer.errors import InputError
from voxtrainer.metrics import min_dcf_line
from voxtrainer.runtime import autocast_dtype


class TrainingDiverged(Exception):
    pass


def train_step(model, data, label, optimizer, scaler, mixedprec):
    """One optimiser step on a batch already on the device: (loss tensor, metric). A non-finite
    loss (agreed by every rank) raises TrainingDiverged before the weights change."""
    device_type = data.device.type
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type, dtype=autocast_dtype(device_type), enabled=mixedprec):
        loss, metric = model(data, label)
    if not finite_on_all_ranks(loss):
        raise TrainingDiverged("loss became %s" % loss.item())
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, metric


class EpochResult(NamedTuple):
    loss: float    # mean over the epoch's steps
    metric: float  # the loss's metric (accuracy or pair EER, percent), mean over the steps
    steps: int


def run_epoch(model, loader, optimizer, scaler, device, mixedprec, epoch, show_progress=True):
    """One pass over the loader's batches."""
    model.train()
    total_loss, total_metric, steps = 0.0, 0.0, 0
    bar = tqdm(loader, desc="Epoch %d" % epoch, unit="batch", disable=not show_progress, leave=False)
    tstart = time.time()
    for data, label in bar:
        data, label = data.to(device, non_blocking=True), label.to(device, non_blocking=True)
        try:
            loss, metric = train_step(model, data, label, optimizer, scaler, mixedprec)
        except TrainingDiverged as error:
            raise TrainingDiverged("%s at epoch %d, step %d" % (error, epoch, steps + 1))
        total_loss += loss.item()
        total_metric += float(metric)
        steps += 1
        elapsed, tstart = time.time() - tstart, time.time()
        bar.set_postfix(loss="%.4f" % (total_loss / steps), acc_or_eer="%.2f%%" % (total_metric / steps),
                        utt_s="%.1f" % (data.shape[0] * data.shape[1] / max(elapsed, 1e-9)))
    return EpochResult(total_loss / max(steps, 1), total_metric / max(steps, 1), steps)


def current_lr(optimizer):
    return max(group["lr"] for group in optimizer.param_groups)


def resume(net, state_parts, scheduler, save_path, initial_model, lr):
    """Continue from the newest readable model of `save_path` (a damaged newest one, e.g. cut by
    a full disk, is set aside as <name>.damaged with a warning), else start from `initial_model`
    (if any). Returns the first epoch to train."""
    for newest in reversed(checkpoints.model_paths(save_path)):
        try:
            found_state = checkpoints.restore_checkpoint(net, state_parts, newest)
        except checkpoints.DamagedCheckpoint as error:
            os.replace(newest, newest + ".damaged")
            log.warning("%s; set aside as %s.damaged, resuming from the checkpoint before it" % (error.line, newest))
            continue
        epoch = checkpoints.epoch_of(newest)
        if not found_state:  # a model of the original trainer: its LR decays replayed, a fresh optimizer
            for _ in range(epoch):
                scheduler.step()
            log.info("Model %s loaded from previous state (no training state: fresh optimizer)!" % newest)
        else:
            log.info("Resumed from %s (epoch %d, LR %f)" % (newest, epoch, current_lr(scheduler.optimizer)))
            initial_lr = getattr(scheduler, "base_lrs", [lr])[0]
            if not math.isclose(initial_lr, lr):
                log.warning("--lr %g is not this run's initial LR %g: the resumed run goes on with its saved "
                            "schedule (LR %g now); use another --save_path to train with a new --lr" % (
                                lr, initial_lr, current_lr(scheduler.optimizer)))
        return epoch + 1
    if initial_model:
        net.loadParameters(initial_model)
        log.info("Model %s loaded!" % initial_model)
    return 1


class ScoreFile:
    """result/scores.txt as the seed writes it: the arguments, then one line per epoch."""

    def __init__(self, path, settings):
        self.handle = open(path, "a+") if path else None
        for name, value in sorted(settings.items()):
            self.write("%s %s" % (name, value))

    def write(self, line):
        if self.handle:
            self.handle.write(line + "\n")
            self.handle.flush()

    def close(self):
        if self.handle:
            self.handle.close()


class Run(NamedTuple):
    """What a training run is, where it starts and writes, and when it evaluates."""
    model_name: str
    identity: dict      # the settings that make the network and its loss head: a resumed run must match
    lr: float           # the requested initial LR
    initial_model: str  # weights to start from when save_path holds no model yet ("" for none)
    save_path: str
    max_epoch: int
    test_interval: int
    mixedprec: bool
    eval_untrained: bool
    settings: dict  # written at the top of scores.txt, as the seed does


def train(net, loader, sampler, optimizer, scheduler, scaler, device, run, evaluate, dist_env):
    """Train epochs until run.max_epoch; `evaluate()` gives the Evaluation of the test list. Every run.test_interval epochs and after the last the
    model is saved (with its training state) and then evaluated, so a failing evaluation never
    costs the trained epochs. Returns the last EER (or None)."""
    model_dir = os.path.join(run.save_path, "model")
    result_dir = os.path.join(run.save_path, "result")
    state_parts = checkpoints.training_state(optimizer, scheduler, scaler, run.identity)
    first_epoch = resume(net, state_parts, scheduler, run.save_path, run.initial_model, run.lr)
    model = net
    if dist_env.enabled:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    scores = ScoreFile(os.path.join(result_dir, "scores.txt") if dist_env.is_main else None, run.settings)
    sampler.set_epoch(first_epoch)
    if first_epoch > run.max_epoch:
        log.info("Nothing to train: %s already holds epoch %d (--max_epoch %d); use another --save_path to "
                 "start again" % (model_dir, first_epoch - 1, run.max_epoch))
    untrained_eer = None
    if run.eval_untrained and first_epoch == 1:
        untrained_eer = evaluate().eer
        log.info("Untrained model: VEER %2.4f" % untrained_eer)
        scores.write("IT 0, untrained, VEER %2.4f" % untrained_eer)

    last_saved, eer = None, None
    try:
        for epoch in range(first_epoch, run.max_epoch + 1):
            sampler.set_epoch(epoch)
            lr = current_lr(optimizer)
            log.info("%s %d Training %s with LR %f..." % (time.strftime("%Y-%m-%d %H:%M:%S"), epoch,
                                                          run.model_name, lr))
            try:
                result = run_epoch(model, loader, optimizer, scaler, device, run.mixedprec, epoch,
                                   show_progress=dist_env.is_main)
            except TrainingDiverged as error:
                kept = last_saved or (checkpoints.model_paths(run.save_path) or ["none"])[-1]
                raise InputError("%s; the last good checkpoint is kept (%s); try a lower --lr" % (error, kept))
            scheduler.step()
            if dist_env.enabled:
                broadcast_buffers(net)
            if os.environ.get(RANK_DUMP_ENV):
                dump_rank_state(net, sampler, epoch, dist_env.rank, dist_env.world_size, result_dir)

            line = "LR %f, TEER/TAcc %2.2f, TLOSS %f" % (lr, result.metric, result.loss)
            if epoch % run.test_interval == 0 or epoch == run.max_epoch:
                if dist_env.is_main:
                    last_saved = checkpoints.save_checkpoint(net, state_parts, epoch, model_dir)
                log.info("%s %d Evaluating..." % (time.strftime("%Y-%m-%d %H:%M:%S"), epoch))
                evaluation = evaluate()
                eer = evaluation.eer
                line += ", VEER %2.4f" % eer
                if dist_env.is_main:
                    log.info(min_dcf_line(evaluation.scores, evaluation.labels))
                    write_text(os.path.join(model_dir, "model%09d.eer" % epoch), "%.4f" % eer)
                    from voxtrainer.reports import write_reports
                    write_reports(evaluation.scores, evaluation.labels, result_dir, "model%09d" % epoch)
            log.info("%s %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), line))
            scores.write("IT %d, %s" % (epoch, line))
    finally:
        scores.close()
    if eer is not None:
        log.info("Final test EER %2.4f%%" % eer + ("" if untrained_eer is None else
                                                    " (untrained model: %2.4f%%)" % untrained_eer))
    return eer
