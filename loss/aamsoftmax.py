import math

import torch
import torch.nn.functional as F

from loss.base import MarginSoftmax, xavier_normal_parameter

# WeSpeaker (projections.py) puts no inter-top-k penalty in force while the margin is at most this,
# i.e. before a margin schedule starts to rise.
NO_MARGIN = 0.001


class LossFunction(MarginSoftmax):
    """Additive angular margin softmax (ArcFace): s * cos(theta_y + m) for the target class.

    Two options from WeSpeaker's ArcMarginProduct_intertopk_subcenter, both off by default (then the
    head and its checkpoint keys are the original's):
    `subcenters` K > 1: K centres per class (rows c*K .. c*K+K-1 of `weight`, WeSpeaker's layout); a
    class's cosine is the largest of its centres', so a class can hold a few modes (noisy labels).
    `intertopk` k > 0: the k non-target classes with the largest cosines get an angular penalty
    the other way, cos(theta - m'), which raises their logits: the hardest negatives weigh more.
    m' is `intertopk_margin` scaled by margin / target margin (WeSpeaker scales it by margin / 0.2,
    0.2 being its recipes' final margin), so it rises with a margin schedule and is 0 while the
    margin is 0."""

    def __init__(self, nOut=512, nClasses=5994, margin=0.3, scale=15, subcenters=1, intertopk=0,
                 intertopk_margin=0.06, **kwargs):
        super().__init__(margin, scale)
        self.subcenters = subcenters
        self.intertopk = min(intertopk, nClasses - 1)
        self.intertopk_margin = intertopk_margin
        self.target_margin = margin
        self.weight = xavier_normal_parameter(nClasses * subcenters, nOut)
        self.set_margin(margin)

    def set_margin(self, margin):
        super().set_margin(margin)
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        # Past theta = pi - m, cos(theta + m) stops decreasing; there the margin is
        # replaced by a linear penalty so the target logit stays monotonic in theta.
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin
        hard = 0.0
        if self.intertopk and margin > NO_MARGIN:
            hard = self.intertopk_margin * (margin / self.target_margin if self.target_margin > 0 else 1.0)
        self.cos_hard = math.cos(hard)
        self.sin_hard = math.sin(hard)

    def cosines(self, x):
        cos = F.linear(F.normalize(x), F.normalize(self.weight))
        if self.subcenters > 1:
            cos = cos.reshape(cos.size(0), -1, self.subcenters).amax(dim=2)
        return cos

    def apply_margin(self, cos, onehot):
        sin = torch.sqrt((1.0 - cos * cos).clamp(0, 1))
        phi = cos * self.cos_m - sin * self.sin_m
        phi = torch.where(cos - self.th > 0, phi, cos - self.mm)
        if not self.intertopk:
            return onehot * phi + (1.0 - onehot) * cos
        # The target is pushed below every cosine (all >= -1) so that it is never among the top k.
        hardest = torch.topk(cos.detach() - 2.0 * onehot, self.intertopk, dim=1).indices
        hard = torch.zeros_like(cos).scatter_(1, hardest, 1.0)
        phi_hard = cos * self.cos_hard + sin * self.sin_hard  # cos(theta - m')
        return onehot * phi + hard * phi_hard + (1.0 - onehot - hard) * cos
