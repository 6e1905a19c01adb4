"""The one trial score, for trials and for cohorts alike: minus the mean, over all pairs of eval
crops (i, j), of ||a_i - b_j + 1e-6||.

The 1e-6 is the eps torch's pairwise_distance (which the original called) adds to the
difference; direct, non-matmul distances keep float32 scores equal to the original's. Every
score goes through `mean_crop_distance`, so a cohort score equals the trial score of the same pair."""

import torch

TRIALS_PER_BLOCK = 4096
DISTANCES_PER_BLOCK = 1 << 24  # bounds the memory of scoring every file against a cohort


def mean_crop_distance(first, second):
    """(..., crops_a, dim), (..., crops_b, dim) -> (...): mean crop-pair distance."""
    distances = torch.cdist(first + 1e-6, second, compute_mode="donot_use_mm_for_euclid_dist")
    return distances.flatten(-2).mean(dim=-1)


def trial_scores(enrol, test, block=TRIALS_PER_BLOCK):
    """enrol, test: (trials, crops, dim) -> (trials,) scores of the paired rows."""
    scores = [-mean_crop_distance(enrol[first:first + block], test[first:first + block])
              for first in range(0, enrol.shape[0], block)]
    return torch.cat(scores) if scores else torch.zeros(0)


def cross_scores(first, second):
    """first (F, crops, dim), second (C, crops, dim) -> (F, C): every file of `first` against
    every file of `second`, scored as a trial."""
    files, crops, dim = first.shape
    others, other_crops = second.shape[:2]
    flat_second = second.reshape(-1, dim)
    per_block = max(1, DISTANCES_PER_BLOCK // max(1, crops * others * other_crops))
    blocks = []
    for start in range(0, files, per_block):
        block = first[start:start + per_block]
        # (B * crops, C * crops_b) -> (B, C, crops, crops_b): each (file, cohort file) pair's crop pairs
        distances = torch.cdist(block.reshape(-1, dim) + 1e-6, flat_second,
                                compute_mode="donot_use_mm_for_euclid_dist")
        pairs = distances.reshape(block.shape[0], crops, others, other_crops).transpose(1, 2)
        blocks.append(-pairs.flatten(-2).mean(dim=-1))
    return torch.cat(blocks) if blocks else torch.zeros(0, others)
