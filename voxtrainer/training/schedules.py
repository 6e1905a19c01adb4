"""Schedules set before every training step (WeSpeaker's per-iteration schedules), as functions of
the position in training: epochs done, fractional, `epoch - 1 + step / steps_in_epoch`.

A per-batch schedule has `per_batch = True` and `set_position(epoch, step, steps_in_epoch)`; the
training loop calls it before each step (voxtrainer.training.loop.run_epoch). Because what it puts in
force is a function of the position alone, a resumed run (which restarts at an epoch boundary)
recomputes it exactly: nothing beyond the epoch needs saving, and resume stays bit-identical.
The position is fractional rather than a step count because this sampler's epochs differ in
length by a few batches; with equal epochs it is WeSpeaker's iteration / epoch_iter exactly."""

import math

from voxtrainer.errors import InputError

RISES = ("exp", "linear")


def position(epoch, step, steps_in_epoch):
    return epoch - 1 + step / max(steps_in_epoch, 1)


def rise(fraction, kind):
    """0 at fraction 0 rising towards 1 at fraction 1: WeSpeaker's MarginScheduler
    (wespeaker/utils/schedulers.py, get_increase_margin). 'exp' is 1 - 1e-3 ** fraction (with its
    1e-6 guard), fast at first then levelling off: 0.999 just before the end, where the final value
    takes over."""
    if kind == "exp":
        return 1.0 - math.exp(fraction * math.log(1e-3 / (1.0 + 1e-6)))
    return fraction


class MarginSchedule:
    """The margin of a margin-softmax loss (its `set_margin`): `initial` before epoch `start_epoch`,
    rising (`rise`) during epochs start_epoch .. end_epoch - 1 to `final`, `final` from the first
    step of `end_epoch` on. WeSpeaker's voxceleb recipes: 0 to 0.2, epochs 20 to 40, exp."""

    per_batch = True

    def __init__(self, loss, initial, final, start_epoch, end_epoch, kind="exp"):
        if not hasattr(loss, "set_margin"):
            raise InputError("--margin_start_epoch: the loss has no margin to schedule (use aamsoftmax or "
                             "amsoftmax)")
        if start_epoch < 1 or end_epoch < start_epoch:
            raise InputError("--margin_start_epoch %d --margin_end_epoch %d: give 1 <= start <= end" % (
                start_epoch, end_epoch))
        if kind not in RISES:
            raise InputError("--margin_rise %r: one of %s" % (kind, ", ".join(RISES)))
        self.loss, self.initial, self.final = loss, initial, final
        self.start, self.end, self.kind = start_epoch - 1, end_epoch - 1, kind

    def margin_at(self, where):
        if where >= self.end:
            return self.final
        if where < self.start:
            return self.initial
        return self.initial + (self.final - self.initial) * rise((where - self.start) / (self.end - self.start),
                                                                 self.kind)

    def set_position(self, epoch, step, steps_in_epoch):
        self.loss.set_margin(self.margin_at(position(epoch, step, steps_in_epoch)))
