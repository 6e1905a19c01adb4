"""What the tools share: the process settings made before torch is imported, the net they time,
one training step as the trainer takes it, and CPU-time readers."""

from voxtrainer import runtime  # noqa: F401  (before torch: OMP_WAIT_POLICY, as trainSpeakerNet.py)

import resource  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from voxtrainer.network import SpeakerNet  # noqa: E402
from voxtrainer.training.step import batch_to_device, train_step  # noqa: E402


def build_net(model, trainfunc="angleproto", nOut=512, nClasses=5994, device="cpu", memory_format=None):
    """A SpeakerNet with SAP pooling, its weights drawn from seed 0, on `device` (conv weights in
    `memory_format`, when given, as the trainer lays them out)."""
    torch.manual_seed(0)
    net = SpeakerNet(model=model, trainfunc=trainfunc, nOut=nOut, encoder_type="SAP", nClasses=nClasses)
    if memory_format is None:
        return net.to(device)
    return net.to(device, memory_format=memory_format)


def take_step(net, data, label, optimizer, scaler, mixedprec):
    """One batch as the trainer's epoch loop (voxtrainer.training.loop.run_epoch) handles it: moved to the
    net's device (int16 crops converted there), one voxtrainer.training.step.train_step, the loss read back
    (which the epoch loop does only when its progress bar refreshes). Returns the loss."""
    data, label = batch_to_device(data, label, net.device)
    loss, _ = train_step(net, data, label, optimizer, scaler, mixedprec)
    return loss.item()


def cpu_seconds(children=False):
    """CPU time of this process; with `children`, also of its finished child processes (the loader
    workers, once they have exited)."""
    seconds = time.process_time()
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds += usage.ru_utime + usage.ru_stime
    return seconds


def children_cpu_seconds():
    """CPU time of this process's finished child processes alone."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def children_peak_rss_mb():
    """The largest peak RSS (MB) of this process's finished child processes (loader workers once
    they have exited, subprocesses), getrusage's ru_maxrss: a maximum over all of them so far."""
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
