import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from loss.accuracy import top1_accuracy


class LossFunction(nn.Module):
    """Additive angular margin softmax (ArcFace): s * cos(theta_y + m) for the target class."""

    train_normalize = False
    test_normalize = True
    utterances_per_speaker = 1  # one utterance per class label

    def __init__(self, nOut=512, nClasses=5994, margin=0.3, scale=15, **kwargs):
        super().__init__()
        self.m = margin
        self.s = scale
        self.weight = nn.Parameter(torch.empty(nClasses, nOut))
        nn.init.xavier_normal_(self.weight, gain=1)
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        # Past theta = pi - m, cos(theta + m) stops decreasing; there the margin is
        # replaced by a linear penalty so the target logit stays monotonic in theta.
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin

    def forward(self, x, label):
        with torch.autocast(device_type=x.device.type, enabled=False):
            cos = F.linear(F.normalize(x.float()), F.normalize(self.weight))
            sin = torch.sqrt((1.0 - cos * cos).clamp(0, 1))
            phi = cos * self.cos_m - sin * self.sin_m
            phi = torch.where(cos - self.th > 0, phi, cos - self.mm)
            onehot = F.one_hot(label, cos.size(1)).to(cos.dtype)
            logits = self.s * (onehot * phi + (1.0 - onehot) * cos)
            loss = F.cross_entropy(logits, label)
        return loss, top1_accuracy(logits, label)
