"""The contract every loss plugin keeps, and the two loss families that share their arithmetic.

A plugin is `loss/<name>.py` defining `LossFunction`, a subclass of `SpeakerLoss`, chosen by
name with --trainfunc. The triplet/contrastive family lives next to its mining, in pair_mining.py.
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from loss.accuracy import top1_accuracy


class SpeakerLoss(nn.Module):
    """What the trainer relies on from a loss, in one place rather than in each plugin's habits.

    SpeakerNet reads `train_normalize` (L2-normalise embeddings before this loss) and
    `test_normalize` (before scoring trials) off the class, before any instance exists.
    Neither has a default, because a wrong one would silently change what is trained and how
    trials are scored: a concrete loss, or the family base it derives from, states both, and
    defining one that does not raises TypeError there rather than at training time.
    `utterances_per_speaker` fixes nPerSpeaker when the loss's arithmetic needs a given
    count; None leaves it to the command line. `classifies_speakers` says the loss has one
    output per training speaker (--nClasses of them), so the trainer can refuse a train list
    with more speakers than classes before the first step instead of failing inside it. Pass `abstract=True` in the class statement
    of a family base that leaves any of this to its subclasses. Constructors take keyword
    arguments and ignore those they do not use, because SpeakerNet passes every option to
    every loss.

    `forward(x, label) -> (loss, metric)`: a float32 scalar tensor and a Python float (top-1
    accuracy or pair EER, in percent). Subclasses write `forward_fp32`, which always sees
    float32 input with autocast off: the logits and their softmax over thousands of classes
    are where bf16/fp16 rounding would change the training signal, so losses never run in
    reduced precision, whatever the trunk does.
    """

    train_normalize: bool
    test_normalize: bool
    utterances_per_speaker: Optional[int] = None
    classifies_speakers = False

    def __init_subclass__(cls, abstract=False, **kwargs):
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        name = "%s.%s" % (cls.__module__, cls.__qualname__)
        for flag in ("train_normalize", "test_normalize"):
            if not isinstance(getattr(cls, flag, None), bool):
                raise TypeError("%s must declare the class attribute %s = True or False" % (name, flag))
        count = cls.utterances_per_speaker
        if count is not None and not (isinstance(count, int) and count >= 1):
            raise TypeError("%s.utterances_per_speaker must be None or a positive int, not %r" % (name, count))
        if cls.forward is SpeakerLoss.forward and cls.forward_fp32 is SpeakerLoss.forward_fp32:
            raise TypeError("%s must define forward_fp32(x, label) -> (loss, metric)" % name)

    def __init__(self, **kwargs):
        super().__init__()

    def forward(self, x, label=None):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.forward_fp32(x.float(), label)

    def forward_fp32(self, x, label):
        raise NotImplementedError

    @staticmethod
    def cross_entropy_top1(logits, target):
        """(mean cross-entropy, top-1 accuracy in percent) of the logits for the target classes."""
        return F.cross_entropy(logits, target), top1_accuracy(logits, target)


def xavier_normal_parameter(*shape):
    weight = nn.Parameter(torch.empty(*shape))
    nn.init.xavier_normal_(weight, gain=1)
    return weight


class MarginSoftmax(SpeakerLoss, abstract=True):
    """Shared by the additive (am) and angular (aam) margin softmax, which differ only in how
    the margin bends the target cosine and in how the original checkpoints store the class
    centres, so each subclass supplies `cosines` and `apply_margin`."""

    train_normalize = False
    test_normalize = True
    utterances_per_speaker = 1  # one utterance per class label
    classifies_speakers = True

    def __init__(self, margin, scale):
        super().__init__()
        self.m = margin
        self.s = scale

    def set_margin(self, margin):
        """Put `margin` in force from the next step on: a margin schedule
        (voxtrainer.training.schedules.MarginSchedule) calls it before every step. Subclasses that derive
        constants from the margin recompute them here."""
        self.m = margin

    def forward_fp32(self, x, label):
        cos = self.cosines(x)
        onehot = F.one_hot(label, cos.size(1)).to(cos.dtype)
        # Accuracy is measured on the margin-penalised logits, like the original.
        return self.cross_entropy_top1(self.s * self.apply_margin(cos, onehot), label)


class LearntCosineScale(SpeakerLoss, abstract=True):
    """Shared by angleproto and GE2E: cosines lie in [-1, 1], too narrow a range for softmax
    logits, so both map them through a learnt scale `w` and bias `b` rather than a fixed one."""

    train_normalize = True
    test_normalize = True

    def __init__(self, init_w=10.0, init_b=-5.0, **kwargs):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(init_w))
        self.b = nn.Parameter(torch.tensor(init_b))

    def cosine_logits(self, cos):
        # The original computed clamp(w, 1e-6) but discarded it, so w is used unclamped.
        return cos * self.w + self.b
