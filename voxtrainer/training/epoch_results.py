"""What an evaluation epoch leaves behind (its `IT n, ...` line in result/scores.txt, the curves,
the DET figures and model%09d.eer), written in one order so that a kill at any moment loses none
of it: the checkpoint first (with the epoch's training figures in its .state), the `.eer` last.
A `.model` without its `.eer` is an epoch whose evaluation a kill cut short; the resumed run
evaluates it first (`pending_epoch`), from the same weights and generator states as the run
that was killed, and writes what it had not written."""

import os
from typing import NamedTuple

from voxtrainer import checkpoints, log
from voxtrainer.atomic import write_text
from voxtrainer.scoring.metrics import P_TARGETS, min_dcf_line, min_dcfs

FIGURES_KEY = "epoch_figures"  # in the .state: the figures of the epoch's scores.txt line


class EpochFigures(NamedTuple):
    """An epoch's training figures, as its scores.txt line shows them."""
    lr: float
    loss: float    # mean over the epoch's steps
    metric: float  # the loss's metric (accuracy or pair EER, percent), mean over the steps
    steps: int


def score_line(epoch, figures, eer=None):
    """`IT n, LR ..., TEER/TAcc ..., TLOSS ...[, VEER ...]`, the seed's line; without figures (a
    .state of before they were saved) the VEER alone."""
    parts = [] if figures is None else ["LR %f, TEER/TAcc %2.2f, TLOSS %f" % (figures.lr, figures.metric,
                                                                               figures.loss)]
    if eer is not None:
        parts.append("VEER %2.4f" % eer)
    return "IT %d, %s" % (epoch, ", ".join(parts))


def evaluate_epoch(epoch, evaluate, folder, is_main):
    """The epoch's evaluation (every rank takes part) and, on the main process, its minDCF line and
    DET figures: (Evaluation, minDCFs or None)."""
    import time
    from voxtrainer.scoring.reports import write_reports
    log.info("%s %d Evaluating..." % (time.strftime("%Y-%m-%d %H:%M:%S"), epoch))
    evaluation = evaluate()
    if not is_main:
        return evaluation, None
    dcfs = min_dcfs(evaluation.scores, evaluation.labels)
    log.info(min_dcf_line(dcfs))
    write_reports(evaluation.scores, evaluation.labels, folder.result_dir, folder.epoch_name(epoch))
    return evaluation, dcfs


def has_score_line(scores_path, epoch):
    """Whether scores.txt already holds epoch's line (a kill after it, before the .eer)."""
    if not os.path.isfile(scores_path):
        return False
    prefix = "IT %d, " % epoch
    with open(scores_path) as handle:
        return any(line.startswith(prefix) for line in handle)


def pending_epoch(folder, first_epoch):
    """(epoch, EpochFigures or None) of the checkpoint a resumed run starts from when its
    evaluation was never finished (no .eer beside it), else None."""
    epoch = first_epoch - 1
    model = folder.model_file(epoch)
    if epoch < 1 or not os.path.isfile(model) or os.path.isfile(folder.eer_file(epoch)):
        return None
    state = checkpoints.read_training_state(model)
    saved = (state or {}).get(FIGURES_KEY)
    return epoch, None if saved is None else EpochFigures(**saved)


def epoch_record(epoch, lr, result, eer=None, dcfs=None):
    """One epoch of the run's history (what the training curves plot): JSON-ready values; `eer` and
    `dcfs` (metrics.min_dcfs) of the epoch's evaluation, None when it had none."""
    record = {"epoch": epoch, "lr": lr, "loss": result.loss, "train_metric": result.metric,
              "veer": None if eer is None else float(eer)}
    for p_target in P_TARGETS:
        record["min_dcf_%g" % p_target] = None if dcfs is None else dcfs[p_target]
    return record


def read_history(path, first_epoch):
    """The history of the epochs before `first_epoch` that an earlier run of this folder wrote
    with its curves (`path`, result/curves.json), so that a resumed run's curves start at epoch 1;
    later epochs (a killed run's, not kept by any checkpoint) are dropped."""
    import json
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


def record_epoch(epoch, figures, evaluation, dcfs, history, scores, folder, metric_name, write_line=True):
    """The main process's record of a trained epoch: its history record (and, after an evaluation,
    the curves), its log and scores.txt line (unless `write_line` is False: the line is there
    already) and, last, the `.eer` that marks the evaluation as recorded (pending_epoch)."""
    import time
    from voxtrainer.scoring.reports import write_curves
    eer = None if evaluation is None else evaluation.eer
    if figures is not None:
        history[:] = [record for record in history if record["epoch"] != epoch]  # a killed recording's
        history.append(epoch_record(epoch, figures.lr, figures, eer, dcfs))
    if evaluation is not None and history:
        write_curves(history, folder.curves_png, folder.curves_json, metric_name)
    line = score_line(epoch, figures, eer)
    log.info("%s %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), line.split(", ", 1)[1]))
    if write_line:
        scores.write(line)
    if evaluation is not None:
        write_text(folder.eer_file(epoch), "%.4f" % eer)


def finish_pending_evaluation(folder, first_epoch, evaluate, history, scores, metric_name, is_main):
    """Evaluate and record the epoch whose evaluation a kill cut short (pending_epoch), before
    training goes on: returns its EER, or None when there was none. Every rank calls it (the
    evaluation is shared); the main process writes."""
    pending = pending_epoch(folder, first_epoch)
    if pending is None:
        return None
    epoch, figures = pending
    log.info("Epoch %d was saved but its evaluation never finished (killed?): evaluating it now" % epoch)
    evaluation, dcfs = evaluate_epoch(epoch, evaluate, folder, is_main)
    if is_main:
        written = has_score_line(folder.scores_file, epoch)
        record_epoch(epoch, figures, evaluation, dcfs, history, scores, folder, metric_name,
                     write_line=not written)
    return evaluation.eer
