"""Verification metrics: the EER and thresholds exactly as the 2020 trainer computes them, and the
normalised minimum detection cost (NIST SRE definition)."""

from typing import NamedTuple

import numpy
from sklearn import metrics

from voxtrainer.errors import InputError

P_TARGETS = (0.05, 0.01)


def finite_scores(scores):
    """The scores as an array of their own type, or InputError when any is NaN or infinite: they
    rank no trials (sklearn would stop with a traceback, and the minDCF would come out wrong)."""
    scores = numpy.asarray(scores)
    bad = int(numpy.count_nonzero(~numpy.isfinite(scores)))
    if bad:
        raise InputError("%d of %d scores are not finite (NaN or infinite), so they have no EER or minDCF; the "
                         "embeddings they compare diverged or overflowed: try a lower --lr (a training run keeps "
                         "the checkpoints of its earlier evaluations in model/)" % (bad, scores.size))
    return scores


def tuneThresholdfromScore(scores, labels, target_fa, target_fr=None):
    """Return (tunedThreshold, eer, fpr, fnr), rates in percent.

    tunedThreshold holds [threshold, fpr, fnr] for each requested false-reject
    rate (first) and false-accept rate (then), as the original did.
    """
    fpr, tpr, thresholds = metrics.roc_curve(labels, finite_scores(scores), pos_label=1)
    fnr = (1 - tpr) * 100
    fpr = fpr * 100

    tunedThreshold = []
    for target, rates in [(t, fnr) for t in (target_fr or [])] + [(t, fpr) for t in target_fa]:
        idx = numpy.nanargmin(numpy.absolute(target - rates))
        tunedThreshold.append([thresholds[idx], fpr[idx], fnr[idx]])

    idxE = numpy.nanargmin(numpy.absolute(fnr - fpr))
    eer = max(fpr[idxE], fnr[idxE])
    return tunedThreshold, eer, fpr, fnr


def equal_error_rate(scores, labels):
    """The trainer's EER in percent (tuneThresholdfromScore's)."""
    return tuneThresholdfromScore(scores, labels, [1, 0.1])[1]


def ComputeErrorRates(scores, labels):
    """False-negative and false-positive rates (fractions) at every threshold, in threshold order."""
    scores = finite_scores(scores)
    order = numpy.argsort(scores, kind="mergesort")
    sorted_labels = numpy.asarray(labels)[order]
    thresholds = scores[order]
    n_target = sorted_labels.sum()
    n_nontarget = len(sorted_labels) - n_target
    # Thresholding at each score rejects it and everything below it, plus the "accept all" point.
    fnrs = numpy.concatenate([[0.0], numpy.cumsum(sorted_labels)]) / n_target
    fprs = 1.0 - numpy.concatenate([[0.0], numpy.cumsum(1 - sorted_labels)]) / n_nontarget
    return fnrs, fprs, thresholds


class DcfPoint(NamedTuple):
    """Where the detection cost is lowest: its normalised value, threshold and error rates (fractions)."""
    min_dcf: float
    threshold: float
    false_accept: float
    false_reject: float


def lowest_cost(fnrs, fprs, p_target, c_miss=1.0, c_fa=1.0):
    """(index, normalised cost) of the lowest detection cost over the thresholds of ComputeErrorRates."""
    dcf = c_miss * fnrs * p_target + c_fa * fprs * (1 - p_target)
    idx = int(numpy.argmin(dcf))
    return idx, dcf[idx] / min(c_miss * p_target, c_fa * (1 - p_target))


def ComputeMinDcf(fnrs, fprs, thresholds, p_target, c_miss=1.0, c_fa=1.0):
    """Normalised minimum detection cost and the threshold that reaches it (the seed's signature)."""
    idx, cost = lowest_cost(fnrs, fprs, p_target, c_miss, c_fa)
    return cost, thresholds[min(idx, len(thresholds) - 1)]


def min_dcf_point(scores, labels, p_target=0.05, c_miss=1.0, c_fa=1.0):
    fnrs, fprs, thresholds = ComputeErrorRates(numpy.asarray(scores, dtype=numpy.float64),
                                               numpy.asarray(labels, dtype=numpy.int64))
    idx, cost = lowest_cost(fnrs, fprs, p_target, c_miss, c_fa)
    threshold = thresholds[min(idx, len(thresholds) - 1)]
    return DcfPoint(float(cost), float(threshold), float(fprs[idx]), float(fnrs[idx]))


def minDCF(scores, labels, p_target=0.05, c_miss=1.0, c_fa=1.0):
    """Normalised minDCF of a score list."""
    return min_dcf_point(scores, labels, p_target, c_miss, c_fa).min_dcf


def min_dcfs(scores, labels):
    """{p_target: minDCF(scores, labels, p_target)} for each of P_TARGETS, the scores sorted once."""
    fnrs, fprs, _ = ComputeErrorRates(numpy.asarray(scores, dtype=numpy.float64),
                                      numpy.asarray(labels, dtype=numpy.int64))
    return {p_target: float(lowest_cost(fnrs, fprs, p_target)[1]) for p_target in P_TARGETS}


def min_dcf_line(dcfs):
    """The line every evaluation prints after its EER, from min_dcfs' values."""
    return "MinDCF %.4f (p_target 0.05), %.4f (p_target 0.01)" % tuple(dcfs[p] for p in P_TARGETS)
