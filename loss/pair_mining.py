"""Hard-negative mining and scoring shared by the triplet and contrastive losses, and their base class."""
import random

import numpy
import torch
import torch.nn.functional as F

from loss.base import SpeakerLoss
from voxtrainer.scoring.metrics import tuneThresholdfromScore


def mine_negatives(sim: torch.Tensor, margin: float, hard_rank: int, hard_prob: float) -> list:
    """Pick one negative column for each row of an anchor x positive similarity matrix.

    hard_rank < 0: semi-hard mining, i.e. a random column whose similarity lies in
    (sim[i,i] - margin, sim[i,i]); if there is none, any column (the original
    does not exclude i here).
    hard_rank >= 0: with probability hard_prob one of the hard_rank+1 most similar
    columns other than i, otherwise any column other than i.

    Python's `random` is called in the original's order, so a seeded `random`
    reproduces its choices.
    """
    sim = sim.detach()
    simval, simidx = torch.sort(sim, dim=1, descending=True)
    negidx = []
    for i in range(sim.size(0)):
        order = simidx[i]
        if hard_rank < 0:
            semihard = (sim[i, i] - margin < simval[i]) & (simval[i] < sim[i, i])
            candidates = order[semihard].tolist()
            negidx.append(random.choice(candidates if candidates else order.tolist()))
        else:
            others = order[order != i].tolist()
            if random.random() < hard_prob:
                # Clamped: the original raised IndexError when hard_rank >= the batch's negatives.
                negidx.append(others[random.randint(0, min(hard_rank, len(others) - 1))])
            else:
                negidx.append(random.choice(others))
    return negidx


def mined_pair_distances(x: torch.Tensor, margin: float, hard_rank: int, hard_prob: float):
    """Distances anchor->own positive and anchor->mined negative for x of shape (N, 2, D).

    Embeddings are L2-normalised here even though the trainer already did it,
    as in the original. Distances follow F.pairwise_distance (eps added to the
    difference), which is also what the mining similarity is built from.
    """
    assert x.dim() == 3 and x.size(1) == 2, "pair losses need exactly 2 utterances per speaker"
    anchor = F.normalize(x[:, 0, :], p=2, dim=1)
    positive = F.normalize(x[:, 1, :], p=2, dim=1)

    sim = -F.pairwise_distance(anchor.unsqueeze(1), positive.unsqueeze(0)) ** 2
    negative = positive[mine_negatives(sim, margin, hard_rank, hard_prob)]

    return F.pairwise_distance(anchor, positive), F.pairwise_distance(anchor, negative)


def pair_eer(pos_dist: torch.Tensor, neg_dist: torch.Tensor) -> float:
    """EER (percent) of telling positive from negative pairs by negated distance."""
    scores = -torch.cat([pos_dist, neg_dist]).detach().float().cpu().numpy()
    labels = numpy.array([1] * len(pos_dist) + [0] * len(neg_dist))
    return float(tuneThresholdfromScore(scores, labels, [])[1])


class PairLoss(SpeakerLoss, abstract=True):
    """Shared by triplet and contrastive, which mine the same negatives and report the same
    pair EER and differ only in how they penalise the two distances (`pair_loss`)."""

    train_normalize = True
    test_normalize = True
    utterances_per_speaker = 2  # anchor and positive

    def __init__(self, margin=0.0, hard_rank=0, hard_prob=0.0, **kwargs):
        super().__init__()
        self.margin = margin
        self.hard_rank = hard_rank
        self.hard_prob = hard_prob

    def forward_fp32(self, x, label):
        pos_dist, neg_dist = mined_pair_distances(x, self.margin, self.hard_rank, self.hard_prob)
        return self.pair_loss(pos_dist, neg_dist), pair_eer(pos_dist, neg_dist)
