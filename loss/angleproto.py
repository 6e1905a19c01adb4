import torch
import torch.nn.functional as F

from loss.base import LearntCosineScale
from loss.proto import query_and_prototypes


class LossFunction(LearntCosineScale):
    """Angular prototypical loss: like proto, but logits are a learnt affine map
    of the cosine similarity between query and prototype."""

    def forward_fp32(self, x, label):
        query, prototype = query_and_prototypes(x)
        cos = F.cosine_similarity(query.unsqueeze(1), prototype.unsqueeze(0), dim=-1)
        return self.cross_entropy_top1(self.cosine_logits(cos), torch.arange(x.size(0), device=x.device))
