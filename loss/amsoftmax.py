import torch
import torch.nn as nn
import torch.nn.functional as F

from loss.accuracy import top1_accuracy


class LossFunction(nn.Module):
    """Additive margin softmax (CosFace): s * (cos(theta_y) - m) for the target class."""

    train_normalize = False
    test_normalize = True
    utterances_per_speaker = 1  # one utterance per class label

    def __init__(self, nOut=512, nClasses=5994, margin=0.3, scale=15, **kwargs):
        super().__init__()
        self.m = margin
        self.s = scale
        # Stored (nOut, nClasses), i.e. one class per column, as in original checkpoints.
        self.W = nn.Parameter(torch.empty(nOut, nClasses))
        nn.init.xavier_normal_(self.W, gain=1)

    def forward(self, x, label):
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            x_n = x / x.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)
            W_n = self.W / self.W.norm(p=2, dim=0, keepdim=True).clamp(min=1e-12)
            cos = x_n @ W_n
            margin = F.one_hot(label, cos.size(1)).to(cos.dtype) * self.m
            logits = self.s * (cos - margin)
            loss = F.cross_entropy(logits, label)
        # Accuracy is measured on the margin-penalised logits, like the original.
        return loss, top1_accuracy(logits, label)
