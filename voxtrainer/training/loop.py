"""Training: one epoch, and the loop that trains, evaluates and saves every `test_interval` epochs
and resumes where it stopped. Every step, here and in the benchmarks, is voxtrainer.training.step's
`train_step`."""

import functools
import math
import os
import time
from typing import NamedTuple

import torch
from tqdm import tqdm

from voxtrainer import checkpoints, log
from voxtrainer.errors import InputError
from voxtrainer.experiment import ExperimentFolder
from voxtrainer.training.compiled import CompiledTraining
from voxtrainer.training.distributed import RANK_DUMP_ENV, broadcast_buffers, data_parallel, dump_rank_state
from voxtrainer.training.divergence import watch_for
from voxtrainer.training.epoch_results import (FIGURES_KEY, EpochFigures, evaluate_epoch, finish_pending_evaluation,
                                               read_history, record_epoch)
from voxtrainer.training.step import TrainingDiverged, batch_to_device, train_step


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
    (voxtrainer.training.schedules: an LR or margin schedule) is set to the position before each step.
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


def current_lr(optimizer):
    return max(group["lr"] for group in optimizer.param_groups)


def resume(net, state_parts, scheduler, folder, initial_model, lr, finetune=False):
    """Continue from the newest readable model of `folder` (a damaged newest one, e.g. cut by
    a full disk, is set aside as <name>.damaged with a warning), else start from `initial_model`
    (if any; with `finetune` its embedding network only, under a new loss head). Returns the first
    epoch to train. A resumed run never reads `initial_model`: its checkpoint holds everything."""
    for newest in reversed(folder.model_files()):
        try:
            found_state = checkpoints.restore_checkpoint(net, state_parts, newest)
        except checkpoints.DamagedCheckpoint as error:
            os.replace(newest, newest + ".damaged")
            log.warning("%s; set aside as %s.damaged, resuming from the checkpoint before it" % (error.line, newest))
            continue
        epoch = folder.epoch_of(newest)
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
    identity: dict      # the settings that change training (voxtrainer.training.resume_settings): compared on resume
    lr: float           # the requested initial LR
    initial_model: str  # weights to start from when the folder holds no model yet ("" for none)
    folder: ExperimentFolder
    max_epoch: int
    test_interval: int
    mixedprec: bool
    eval_untrained: bool
    settings: dict  # written at the top of scores.txt, as the seed does
    compile: bool = False  # train through torch.compile (CompiledTraining)
    finetune: bool = False  # initial_model's embedding network only, under a new loss head
    freeze_epochs: int = 0  # epochs 1..N train the loss head alone (freeze_embedding_network)
    train_metric_name: str = "training accuracy or EER (%)"  # the curves' label of EpochResult.metric
    compile_mode: str = "default"  # torch.compile's mode (voxtrainer.training.compiled.CompiledTraining)


def train(net, loader, sampler, optimizer, scheduler, scaler, device, run, evaluate, dist_env, margin_schedule=None):
    """Train epochs until run.max_epoch; `evaluate()` gives the Evaluation of the test list. Every
    run.test_interval epochs and after the last the model is saved (with its training state and the
    epoch's figures) and then evaluated, so a failing evaluation never costs the trained epochs; one
    that a kill cut short is finished first when the run resumes (voxtrainer.training.epoch_results).
    Returns the last EER (or None). The scheduler steps once per epoch; one that declares
    `per_batch` (and `margin_schedule`, if any) is set before every step instead
    (voxtrainer.training.schedules), from the position alone, which a resumed run recomputes exactly."""
    started, folder = time.time(), run.folder
    state_parts = checkpoints.training_state(optimizer, scheduler, scaler, run.identity)
    first_epoch = resume(net, state_parts, scheduler, folder, run.initial_model, run.lr, run.finetune)
    history = read_history(folder.curves_json, first_epoch) if dist_env.is_main else []
    model = net
    if dist_env.enabled:
        model = data_parallel(net, device)
    if run.compile:
        model = CompiledTraining(model, run.compile_mode, device.type)
    scores = ScoreFile(folder.scores_file if dist_env.is_main else None, run.settings)
    sampler.set_epoch(first_epoch)
    if first_epoch > run.max_epoch:
        log.info("Nothing to train: %s already holds epoch %d (--max_epoch %d); use another --save_path to "
                 "start again" % (folder.model_dir, first_epoch - 1, run.max_epoch))
    untrained_eer = None
    if run.eval_untrained and first_epoch == 1:
        untrained_eer = evaluate().eer
        log.info("Untrained model: VEER %2.4f" % untrained_eer)
        scores.write("IT 0, untrained, VEER %2.4f" % untrained_eer)
    per_batch = [schedule for schedule in (scheduler, margin_schedule) if getattr(schedule, "per_batch", False)]
    try:
        eer = finish_pending_evaluation(folder, first_epoch, evaluate, history, scores,
                                        run.train_metric_name, dist_env.is_main)
        for epoch in range(first_epoch, run.max_epoch + 1):
            figures = train_epoch(net, model, loader, sampler, optimizer, scaler, device, run, epoch, per_batch,
                                  dist_env)
            scheduler.step()
            if dist_env.enabled:
                broadcast_buffers(net)
            if os.environ.get(RANK_DUMP_ENV):
                dump_rank_state(net, sampler, epoch, dist_env.rank, dist_env.world_size, folder.result_dir)
            evaluation, dcfs = None, None
            if epoch % run.test_interval == 0 or epoch == run.max_epoch:
                if dist_env.is_main:
                    checkpoints.save_checkpoint(net, state_parts, epoch, folder.model_file(epoch),
                                                {FIGURES_KEY: figures._asdict()})
                evaluation, dcfs = evaluate_epoch(epoch, evaluate, folder, dist_env.is_main)
                eer = evaluation.eer
            if dist_env.is_main:  # only the main process keeps and writes the history
                record_epoch(epoch, figures, evaluation, dcfs, history, scores, folder, run.train_metric_name)
    finally:
        scores.close()
    if eer is not None:
        untrained = "" if untrained_eer is None else " (untrained model: %2.4f%%)" % untrained_eer
        log.info("Final test EER %2.4f%%%s; %d epoch(s) trained in %.1f minutes"
                 % (eer, untrained, run.max_epoch - first_epoch + 1, (time.time() - started) / 60.0))
    return eer


def train_epoch(net, model, loader, sampler, optimizer, scaler, device, run, epoch, per_batch, dist_env):
    """One epoch of `model` (net, or its DDP or compiled wrapper), the embedding network fixed during
    --freeze_epochs: its EpochFigures. A diverged loss is one line naming the last good checkpoint."""
    sampler.set_epoch(epoch)
    for schedule in per_batch:  # so that the line below shows the epoch's first LR
        schedule.set_position(epoch, 0, len(loader))
    lr = current_lr(optimizer)
    log.info("%s %d Training %s with LR %f..." % (time.strftime("%Y-%m-%d %H:%M:%S"), epoch, run.model_name, lr))
    frozen = freeze_embedding_network(net, True) if epoch <= run.freeze_epochs else None
    if frozen is not None:
        log.info("Epoch %d of --freeze_epochs %d: the embedding network is fixed (weights and BatchNorm "
                 "statistics); the loss head alone trains" % (epoch, run.freeze_epochs))
    try:
        result = run_epoch(model, loader, optimizer, scaler, device, run.mixedprec, epoch,
                           show_progress=dist_env.is_main, per_batch=per_batch, frozen=frozen)
    except TrainingDiverged as error:
        kept = run.folder.newest_model() or "none"
        raise InputError("%s; the last good checkpoint is kept (%s); try a lower --lr" % (error, kept))
    finally:
        if frozen is not None:
            freeze_embedding_network(net, False)
    return EpochFigures(lr, result.loss, result.metric, result.steps)
