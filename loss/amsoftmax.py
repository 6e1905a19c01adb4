import torch.nn.functional as F

from loss.base import MarginSoftmax, xavier_normal_parameter


class LossFunction(MarginSoftmax):
    """Additive margin softmax (CosFace): s * (cos(theta_y) - m) for the target class."""

    def __init__(self, nOut=512, nClasses=5994, margin=0.3, scale=15, **kwargs):
        super().__init__(margin, scale)
        # Stored (nOut, nClasses), i.e. one class per column, as in original checkpoints.
        self.W = xavier_normal_parameter(nOut, nClasses)

    def cosines(self, x):
        return F.normalize(x) @ F.normalize(self.W, dim=0)

    def apply_margin(self, cos, onehot):
        return cos - onehot * self.m
