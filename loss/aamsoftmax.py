import math

import torch
import torch.nn.functional as F

from loss.base import MarginSoftmax, xavier_normal_parameter


class LossFunction(MarginSoftmax):
    """Additive angular margin softmax (ArcFace): s * cos(theta_y + m) for the target class."""

    def __init__(self, nOut=512, nClasses=5994, margin=0.3, scale=15, **kwargs):
        super().__init__(margin, scale)
        self.weight = xavier_normal_parameter(nClasses, nOut)
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        # Past theta = pi - m, cos(theta + m) stops decreasing; there the margin is
        # replaced by a linear penalty so the target logit stays monotonic in theta.
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin

    def cosines(self, x):
        return F.linear(F.normalize(x), F.normalize(self.weight))

    def apply_margin(self, cos, onehot):
        sin = torch.sqrt((1.0 - cos * cos).clamp(0, 1))
        phi = cos * self.cos_m - sin * self.sin_m
        phi = torch.where(cos - self.th > 0, phi, cos - self.mm)
        return onehot * phi + (1.0 - onehot) * cos
