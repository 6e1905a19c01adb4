import torch
import torch.nn.functional as F

from loss.pair_mining import PairLoss


class LossFunction(PairLoss):
    """Contrastive loss: pull positive pairs together, push mined negatives beyond
    the margin; metric is pair EER (%)."""

    def pair_loss(self, pos_dist, neg_dist):
        return torch.cat([pos_dist ** 2, F.relu(self.margin - neg_dist) ** 2]).mean()
