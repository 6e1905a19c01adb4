"""Training: one step, one epoch, and the loop that trains, evaluates and saves every
`test_interval` epochs and resumes where it stopped. Every caller (the trainer, the benchmarks)
trains through `train_step`."""

import functools
import math
import os
import time
from typing import NamedTuple

import torch
from tqdm import tqdm

from voxtrainer import checkpoints, log
from voxtrainer.atomic import write_text
from voxtrainer.compiled import CompiledTraining
from voxtrainer.distributed import RANK_DUMP_ENV, broadcast_buffers, data_parallel, dump_rank_state
from voxtrainer.divergence import watch_for
from voxtrainer.errors import InputError
from voxtrainer.metrics import P_TARGETS, min_dcf_line, min_dcfs
# The step lives in voxtrainer.step; its names stay importable from here for every caller.
from voxtrainer.step import TrainingDiverged, batch_to_device, train_step  # noqa: F401


PROGRESS_INTERVAL_S = 1.0  # the progress bar's refresh interval: the epoch's running loss is read no more often


class EpochResult(NamedTuple):
    loss: float    # mean over the epoch's steps
    metric: float  # the loss's metric (accuracy or pair EER, percent), mean over the steps
    steps: int


class RunningTotals:
    """The sums of an epoch's losses and metrics, kept where they are computed (float64, so that
    they equal the Python float sums of the values read step by step) and read only when asked: on
    an accelerator each reading waits for the device."""

    def __init__(self):
        self.loss, self.metric, self.steps = 0.0, 0.0, 0

    def add(self, loss, metric):
        self.loss = self.loss + loss.detach().to(torch.float64)
        self.metric = self.metric + (metric.detach().to(torch.float64) if torch.is_tensor(metric) else metric)
        self.steps += 1

    def means(self):
        """(mean loss, mean metric) as Python floats."""
        steps = max(self.steps, 1)
        return float(self.loss) / steps, float(self.metric) / steps


def run_epoch(model, loader, optimizer, scaler, device, mixedprec, epoch, show_progress=True, per_batch=(),
              frozen=None, divergence_interval=None):
    """One pass over the loader's batches. `model` is a module or a CompiledTraining. The running
    loss and metric are read (on an accelerator, a wait for the device) only when the progress bar
    refreshes, every PROGRESS_INTERVAL_S, and at the end of the epoch. Each of `per_batch`
    (voxtrainer.schedules: an LR or margin schedule) is set to the position before each step.
    `frozen`: a submodule kept in eval mode for the epoch (freeze_embedding_network). The loss's
    finiteness is checked at every step on the CPU, every `divergence_interval` steps (default
    divergence.CUDA_CHECK_INTERVAL) and at the end of the epoch on CUDA (divergence.watch_for)."""
    model.train()
    if frozen is not None:
        frozen.eval()
    steps_in_epoch = len(loader) if per_batch else 0
    step = model.step if isinstance(model, CompiledTraining) else functools.partial(train_step, model)
    totals = RunningTotals()
    watch = watch_for(device, divergence_interval)
    bar = tqdm(loader, desc="Epoch %d" % epoch, unit="batch", disable=not show_progress, leave=False,
               mininterval=PROGRESS_INTERVAL_S)
    last_read, utterances = time.time(), 0
    for data, label in bar:
        data, label = batch_to_device(data, label, device)
        for schedule in per_batch:
            schedule.set_position(epoch, totals.steps, steps_in_epoch)
        try:
            loss, metric = step(data, label, optimizer, scaler, mixedprec, watch)
        except TrainingDiverged as error:
            raise located(error, epoch, error.step or totals.steps + 1)
        totals.add(loss, metric)
        utterances += data.shape[0] * data.shape[1]
        if show_progress and time.time() - last_read >= PROGRESS_INTERVAL_S:
            mean_loss, mean_metric = totals.means()
            now = time.time()  # after the reading: on an accelerator, the queued steps are done
            bar.set_postfix(loss="%.4f" % mean_loss, acc_or_eer="%.2f%%" % mean_metric,
                            utt_s="%.1f" % (utterances / max(now - last_read, 1e-9)))
            last_read, utterances = now, 0
    if watch is not None:
        try:
            watch.check()
        except TrainingDiverged as error:
            raise located(error, epoch, error.step)
    return EpochResult(*totals.means(), totals.steps)


def located(error, epoch, step):
    """The divergence error with where it happened."""
    return TrainingDiverged("%s at epoch %d, step %d" % (error, epoch, step), step=step)


def freeze_embedding_network(net, frozen):
    """--freeze_epochs: the embedding network's weights fixed (requires_grad off: no gradient, so
    the optimiser, weight decay included, leaves them as they are) and, while frozen, its
    BatchNorm layers in eval mode: the running statistics stay the initial model's too, and the
    new head learns on exactly the features the fine-tuned network started from. Returns the
    module to keep in eval mode for the epoch (None when not frozen)."""
    for parameter in net.__S__.parameters():
        parameter.requires_grad_(not frozen)
    return net.__S__ if frozen else None


def epoch_record(epoch, lr, result, eer=None, dcfs=None):
    """One epoch of the run's history (what the training curves plot): JSON-ready values; `eer` and
    `dcfs` (metrics.min_dcfs) of the epoch's evaluation, None when it had none."""
    record = {"epoch": epoch, "lr": lr, "loss": result.loss, "train_metric": result.metric,
              "veer": None if eer is None else float(eer)}
    for p_target in P_TARGETS:
        record["min_dcf_%g" % p_target] = None if dcfs is None else dcfs[p_target]
    return record


def read_history(result_dir, first_epoch):
    """The history of the epochs before `first_epoch` that an earlier run of this folder wrote
    with its curves (result/curves.json), so that a resumed run's curves start at epoch 1; later
    epochs (a killed run's, not kept by any checkpoint) are dropped."""
    import json
    from voxtrainer.reports import CURVES
    path = os.path.join(result_dir, CURVES + ".json")
    if first_epoch <= 1 or not os.path.isfile(path):
        return []
    try:
        with open(path) as handle:
            history = json.load(handle)["history"]
        return [record for record in history if int(record["epoch"]) < first_epoch]
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("%s: unreadable (%s); the training curves start at epoch %d" % (
            path, type(error).__name__, first_epoch))
        return []


def current_lr(optimizer):
    return max(group["lr"] for group in optimizer.param_groups)


def resume(net, state_parts, scheduler, save_path, initial_model, lr, finetune=False):
    """Continue from the newest readable model of `save_path` (a damaged newest one, e.g. cut by
    a full disk, is set aside as <name>.damaged with a warning), else start from `initial_model`
    (if any; with `finetune` its embedding network only, under a new loss head). Returns the first
    epoch to train. A resumed run never reads `initial_model`: its checkpoint holds everything."""
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
    if initial_model and finetune:
        checkpoints.load_parameters(net, initial_model, fresh_head=True)
    elif initial_model:
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
    compile: bool = False  # train through torch.compile (CompiledTraining)
    finetune: bool = False  # initial_model's embedding network only, under a new loss head
    freeze_epochs: int = 0  # epochs 1..N train the loss head alone (freeze_embedding_network)
    train_metric_name: str = "training accuracy or EER (%)"  # the curves' label of EpochResult.metric
    compile_mode: str = "default"  # torch.compile's mode (voxtrainer.compiled.CompiledTraining)


def train(net, loader, sampler, optimizer, scheduler, scaler, device, run, evaluate, dist_env, margin_schedule=None):
    """Train epochs until run.max_epoch; `evaluate()` gives the Evaluation of the test list. Every run.test_interval epochs and after the last the
    model is saved (with its training state) and then evaluated, so a failing evaluation never
    costs the trained epochs. Returns the last EER (or None). The scheduler steps once per epoch;
    one that declares `per_batch` (and `margin_schedule`, if any) is set before every step instead
    (voxtrainer.schedules), from the position alone, which a resumed run recomputes exactly."""
    started = time.time()
    model_dir = os.path.join(run.save_path, "model")
    result_dir = os.path.join(run.save_path, "result")
    state_parts = checkpoints.training_state(optimizer, scheduler, scaler, run.identity)
    first_epoch = resume(net, state_parts, scheduler, run.save_path, run.initial_model, run.lr, run.finetune)
    history = read_history(result_dir, first_epoch) if dist_env.is_main else []
    model = net
    if dist_env.enabled:
        model = data_parallel(net, device)
    if run.compile:
        model = CompiledTraining(model, run.compile_mode, device.type)
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

    per_batch = [schedule for schedule in (scheduler, margin_schedule) if getattr(schedule, "per_batch", False)]
    last_saved, eer = None, None
    try:
        for epoch in range(first_epoch, run.max_epoch + 1):
            sampler.set_epoch(epoch)
            for schedule in per_batch:  # so that the line below shows the epoch's first LR
                schedule.set_position(epoch, 0, len(loader))
            lr = current_lr(optimizer)
            log.info("%s %d Training %s with LR %f..." % (time.strftime("%Y-%m-%d %H:%M:%S"), epoch,
                                                          run.model_name, lr))
            frozen = freeze_embedding_network(net, True) if epoch <= run.freeze_epochs else None
            if frozen is not None:
                log.info("Epoch %d of --freeze_epochs %d: the embedding network is fixed (weights and BatchNorm "
                         "statistics); the loss head alone trains" % (epoch, run.freeze_epochs))
            try:
                result = run_epoch(model, loader, optimizer, scaler, device, run.mixedprec, epoch,
                                   show_progress=dist_env.is_main, per_batch=per_batch, frozen=frozen)
            except TrainingDiverged as error:
                kept = last_saved or (checkpoints.model_paths(run.save_path) or ["none"])[-1]
                raise InputError("%s; the last good checkpoint is kept (%s); try a lower --lr" % (error, kept))
            finally:
                if frozen is not None:
                    freeze_embedding_network(net, False)
            scheduler.step()
            if dist_env.enabled:
                broadcast_buffers(net)
            if os.environ.get(RANK_DUMP_ENV):
                dump_rank_state(net, sampler, epoch, dist_env.rank, dist_env.world_size, result_dir)

            line = "LR %f, TEER/TAcc %2.2f, TLOSS %f" % (lr, result.metric, result.loss)
            evaluation, dcfs = None, None
            if epoch % run.test_interval == 0 or epoch == run.max_epoch:
                if dist_env.is_main:
                    last_saved = checkpoints.save_checkpoint(net, state_parts, epoch, model_dir)
                log.info("%s %d Evaluating..." % (time.strftime("%Y-%m-%d %H:%M:%S"), epoch))
                evaluation = evaluate()
                eer = evaluation.eer
                line += ", VEER %2.4f" % eer
                if dist_env.is_main:
                    dcfs = min_dcfs(evaluation.scores, evaluation.labels)
                    log.info(min_dcf_line(dcfs))
                    write_text(os.path.join(model_dir, "model%09d.eer" % epoch), "%.4f" % eer)
                    from voxtrainer.reports import write_reports
                    write_reports(evaluation.scores, evaluation.labels, result_dir, "model%09d" % epoch)
            if dist_env.is_main:  # only the main process keeps and writes the history
                history.append(epoch_record(epoch, lr, result, evaluation and evaluation.eer, dcfs))
                if evaluation is not None:
                    from voxtrainer.reports import write_curves
                    write_curves(history, result_dir, run.train_metric_name)
            log.info("%s %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), line))
            scores.write("IT %d, %s" % (epoch, line))
    finally:
        scores.close()
    if eer is not None:
        untrained = "" if untrained_eer is None else " (untrained model: %2.4f%%)" % untrained_eer
        log.info("Final test EER %2.4f%%%s; %d epoch(s) trained in %.1f minutes"
                 % (eer, untrained, run.max_epoch - first_epoch + 1, (time.time() - started) / 60.0))
    return eer
