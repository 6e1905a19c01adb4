"""The divergence check without a host wait per step: which step first had a non-finite loss is
kept on the device and read every `interval` steps and at the end of the epoch.

On the CPU the trainer checks every step before the optimizer step (training.finite_check: the
answer is there at once). On CUDA reading a flag per step makes the host wait for the forward pass
of every step, so the queue of launched kernels never grows beyond one step; the watch lets the
host run ahead. The guarantee kept: a non-finite loss stops training before the end of its epoch,
so before any checkpoint is written (the trainer saves only after a whole epoch), and the error
names the first bad step exactly. The weights after that step are not saved, only discarded."""

import torch
import torch.distributed as dist

from voxtrainer.training.distributed import world

CUDA_CHECK_INTERVAL = 50  # steps between two readings on CUDA (a reading costs one wait for the device)
NONE_BAD = 2 ** 62        # "no bad step yet"


class TrainingDiverged(Exception):
    """A non-finite loss; `step` is the 1-based step of the epoch when known."""

    def __init__(self, message, step=None):
        super().__init__(message)
        self.step = step


class DivergenceWatch:
    """Collects each step's loss finiteness on the device; check() raises TrainingDiverged naming
    the first bad step, agreed by every rank (each rank checks after the same steps)."""

    def __init__(self, interval):
        self.interval = max(1, int(interval))
        self.first_bad = None
        self.steps = 0

    def observe(self, loss):
        """Note one step's loss; every `interval` steps, check()."""
        position = torch.full((), self.steps + 1, dtype=torch.int64, device=loss.device)
        marker = torch.where(torch.isfinite(loss.detach()), torch.full_like(position, NONE_BAD), position)
        self.first_bad = marker if self.first_bad is None else torch.minimum(self.first_bad, marker)
        self.steps += 1
        if self.steps % self.interval == 0:
            self.check()

    def check(self):
        """Raises TrainingDiverged if any step so far had a non-finite loss on any rank."""
        if self.first_bad is None:
            return
        first = self.first_bad.reshape(1).clone()
        if world()[1] > 1:
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
        step = int(first.item())
        if step < NONE_BAD:
            raise TrainingDiverged("loss became non-finite", step=step)


def watch_for(device, interval=None):
    """The watch of an epoch on `device`: None on the CPU (each step checks at once) unless an
    `interval` is given; on CUDA one reading every CUDA_CHECK_INTERVAL steps."""
    if interval is None:
        if torch.device(device).type != "cuda":
            return None
        interval = CUDA_CHECK_INTERVAL
    return DivergenceWatch(interval)
