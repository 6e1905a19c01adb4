"""The one trial score, for trials and for cohorts alike: minus the mean, over all pairs of eval
crops (i, j), of ||a_i - b_j + 1e-6||.

The 1e-6 is the eps torch's pairwise_distance (which the original called) adds to the
difference; direct, non-matmul distances (`crop_distances`) keep float32 scores equal to the
original's. Trials and cohorts both go through `crop_distances` and the same mean, so a cohort
score equals the trial score of the same pair, bit for bit.

Cost: torch's direct distance kernel sums each crop pair's squared differences one after the
other, a scalar loop of about 0.75-0.8 ns per crop pair and dimension on the 2-core Xeon measured:
VoxCeleb1-O (37,720 trials x 100 crop pairs x 512 dimensions) takes about 1.5 CPU seconds, shared
by the intra-op threads; gathering the crops is a few percent of that (`python -m
tools.benchmark_pipeline` measures both scales and the block size)."""

import torch
import torch.nn.functional as F

EPS = 1e-6
DIRECT = "donot_use_mm_for_euclid_dist"
# Trials gathered and scored at a time: their crops (2 x block x crops x dim floats, 10 MB for 10
# crops of 512) stay in the caches between the gather and the distances, and memory does not grow
# with the number of trials. 128 and 256 took the least CPU time, 64 and 4,096 about 10% more
# (tools.benchmark_pipeline's scoring_block sweep).
TRIALS_PER_BLOCK = 256
DISTANCES_PER_BLOCK = 1 << 24  # bounds the memory of scoring every file against a cohort


def crop_distances(shifted_first, second):
    """||a_i - b_j + 1e-6|| for every crop pair, given `shifted_first` = a + 1e-6 (as torch's
    pairwise_distance adds it): (..., crops_a, dim), (..., crops_b, dim) -> (..., crops_a, crops_b)."""
    return torch.cdist(shifted_first, second, compute_mode=DIRECT)


def trial_scores(embeddings, enrol, test, block=TRIALS_PER_BLOCK):
    """embeddings (files, crops, dim); enrol, test (trials,) indices of files -> (trials,) scores,
    trial t scoring file enrol[t] against file test[t].

    The crops of `block` trials at a time are gathered into two buffers that every block reuses,
    so memory stays the embeddings plus about 2 x block x crops x dim values however many trials
    there are (VoxCeleb1-E: 580k trials over 145k files)."""
    enrol = torch.as_tensor(enrol, dtype=torch.long, device=embeddings.device)
    test = torch.as_tensor(test, dtype=torch.long, device=embeddings.device)
    if enrol.shape != test.shape or enrol.dim() != 1:
        raise ValueError("enrol and test must be 1-D index tensors of one length, got %s and %s" % (
            tuple(enrol.shape), tuple(test.shape)))
    trials = enrol.shape[0]
    scores = embeddings.new_empty(trials)
    size = (min(block, trials),) + tuple(embeddings.shape[1:])
    first_buffer, second_buffer = embeddings.new_empty(size), embeddings.new_empty(size)
    for start in range(0, trials, block):
        stop = min(start + block, trials)
        first = torch.index_select(embeddings, 0, enrol[start:stop], out=first_buffer[:stop - start])
        second = torch.index_select(embeddings, 0, test[start:stop], out=second_buffer[:stop - start])
        distances = crop_distances(first.add_(EPS), second)
        torch.neg(distances.flatten(-2).mean(dim=-1), out=scores[start:stop])
    return scores


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
        distances = crop_distances(block.reshape(-1, dim) + EPS, flat_second)
        pairs = distances.reshape(block.shape[0], crops, others, other_crops).transpose(1, 2)
        blocks.append(-pairs.flatten(-2).mean(dim=-1))
    return torch.cat(blocks) if blocks else torch.zeros(0, others)


def cosine_ready(embeddings, mean=None):
    """WeSpeaker's scoring through the one scorer: each crop embedding less `mean` (WeSpeaker
    subtracts the mean embedding of its training set), then L2-normalised. For unit vectors
    ||a - b|| = sqrt(2 - 2 cos(a, b)), so the trial score ranks trials as WeSpeaker's cosine does:
    the same EER and minDCF, with one crop per file (--eval_frames 0) as WeSpeaker embeds."""
    if mean is not None:
        embeddings = embeddings - torch.as_tensor(mean, dtype=embeddings.dtype, device=embeddings.device)
    return F.normalize(embeddings, p=2, dim=-1)
