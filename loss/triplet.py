import torch
import torch.nn as nn
import torch.nn.functional as F

from loss.pair_mining import mined_pair_distances, pair_eer


class LossFunction(nn.Module):
    """Triplet loss on squared distances with mined negatives; metric is pair EER (%)."""

    train_normalize = True
    test_normalize = True
    utterances_per_speaker = 2  # anchor and positive

    def __init__(self, margin=0.0, hard_rank=0, hard_prob=0.0, **kwargs):
        super().__init__()
        self.margin = margin
        self.hard_rank = hard_rank
        self.hard_prob = hard_prob

    def forward(self, x, label=None):
        with torch.autocast(device_type=x.device.type, enabled=False):
            pos_dist, neg_dist = mined_pair_distances(x.float(), self.margin, self.hard_rank, self.hard_prob)
            loss = F.relu(pos_dist ** 2 - neg_dist ** 2 + self.margin).mean()
        return loss, pair_eer(pos_dist, neg_dist)
