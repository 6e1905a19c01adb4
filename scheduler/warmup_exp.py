import math

from voxtrainer.errors import InputError
from voxtrainer.training.schedules import position


class WarmupExponential:
    """WeSpeaker's ExponentialDecrease with warm_from_zero (wespeaker/utils/schedulers.py), set
    before every step: at position p (epochs done, fractional),

        lr(p) = c(p) * lr0 * exp(p / N * ln(lr1 / lr0)),  c(p) = scale * p / W for p < W, else scale

    lr0 = --lr, lr1 = --final_lr, N = --max_epoch, W = --warmup_epochs, scale = --lr_reference_batch's
    GPUs x batch / reference (1 without it). The decay runs from the first step, under the warm-up
    too, as in WeSpeaker: lr(N) = scale * lr1. The first step has LR 0.

    Its state is its settings: a resumed run keeps the saved schedule, as StepLR's does."""

    per_batch = True
    SETTINGS = ("initial_lr", "final_lr", "warmup_epochs", "decay_epochs", "lr_scale")

    def __init__(self, optimizer, initial_lr, final_lr, warmup_epochs, decay_epochs, lr_scale=1.0):
        if initial_lr <= 0 or final_lr <= 0:
            raise InputError("--scheduler warmup_exp decays exponentially: --lr %g and --final_lr %g must be above 0"
                             % (initial_lr, final_lr))
        if decay_epochs < 1:
            raise InputError("--scheduler warmup_exp: --max_epoch %d leaves nothing to decay over" % decay_epochs)
        self.optimizer = optimizer
        self.initial_lr, self.final_lr = initial_lr, final_lr
        self.warmup_epochs, self.decay_epochs, self.lr_scale = warmup_epochs, decay_epochs, lr_scale
        self.base_lrs = [initial_lr for _ in optimizer.param_groups]
        self.set_lr(self.lr_at(0.0))

    def lr_at(self, where):
        coefficient = self.lr_scale
        if where < self.warmup_epochs:
            coefficient = self.lr_scale * where / self.warmup_epochs
        return coefficient * self.initial_lr * math.exp(where / self.decay_epochs *
                                                        math.log(self.final_lr / self.initial_lr))

    def set_lr(self, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def set_position(self, epoch, step, steps_in_epoch):
        self.set_lr(self.lr_at(position(epoch, step, steps_in_epoch)))

    def step(self):
        """The per-epoch call the training loop makes of every scheduler: nothing to do, the LR is
        set before each step."""

    def state_dict(self):
        return {name: getattr(self, name) for name in self.SETTINGS}

    def load_state_dict(self, state):
        if not all(name in state for name in self.SETTINGS):
            raise InputError("cannot resume: the saved run used another --scheduler than warmup_exp; use another "
                             "--save_path for a new run")
        for name in self.SETTINGS:
            setattr(self, name, state[name])
        self.base_lrs = [self.initial_lr for _ in self.optimizer.param_groups]


def Scheduler(optimizer, lr, final_lr, warmup_epochs, max_epoch, lr_scale=1.0, **kwargs):
    """Linear warm-up from 0 and exponential decay from --lr to --final_lr over --max_epoch epochs,
    set before every step (WeSpeaker's recipe: 0.1 to 5e-5 over 150 epochs, 6 warm-up epochs)."""
    return WarmupExponential(optimizer, lr, final_lr, warmup_epochs, max_epoch, lr_scale)
