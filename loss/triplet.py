import torch.nn.functional as F

from loss.pair_mining import PairLoss


class LossFunction(PairLoss):
    """Triplet loss on squared distances with mined negatives; metric is pair EER (%)."""

    def pair_loss(self, pos_dist, neg_dist):
        return F.relu(pos_dist ** 2 - neg_dist ** 2 + self.margin).mean()
