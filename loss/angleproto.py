import torch
import torch.nn as nn
import torch.nn.functional as F

from loss.accuracy import top1_accuracy


class LossFunction(nn.Module):
    """Angular prototypical loss: like proto, but logits are a learnt affine map
    of the cosine similarity between query and prototype."""

    train_normalize = True
    test_normalize = True

    def __init__(self, init_w=10.0, init_b=-5.0, **kwargs):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(init_w))
        self.b = nn.Parameter(torch.tensor(init_b))

    def forward(self, x, label=None):
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            assert x.size(1) >= 2, "angular prototypical loss needs at least 2 utterances per speaker"
            prototype = x[:, 1:, :].mean(dim=1)
            query = x[:, 0, :]
            cos = F.cosine_similarity(query.unsqueeze(1), prototype.unsqueeze(0), dim=-1)
            # The original computed clamp(w, 1e-6) but discarded it, so w is used unclamped.
            logits = cos * self.w + self.b
            target = torch.arange(x.size(0), device=x.device)
            loss = F.cross_entropy(logits, target)
        return loss, top1_accuracy(logits, target)
