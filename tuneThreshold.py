"""Verification metrics: EER and operating thresholds (as the original), plus minDCF."""

import numpy
from sklearn import metrics


def tuneThresholdfromScore(scores, labels, target_fa, target_fr=None):
    """Return (tunedThreshold, eer, fpr, fnr), rates in percent.

    tunedThreshold holds [threshold, fpr, fnr] for each requested false-reject
    rate (first) and false-accept rate (then), as the original did.
    """
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores, pos_label=1)
    fnr = (1 - tpr) * 100
    fpr = fpr * 100

    tunedThreshold = []
    for target, rates in [(t, fnr) for t in (target_fr or [])] + [(t, fpr) for t in target_fa]:
        idx = numpy.nanargmin(numpy.absolute(target - rates))
        tunedThreshold.append([thresholds[idx], fpr[idx], fnr[idx]])

    idxE = numpy.nanargmin(numpy.absolute(fnr - fpr))
    eer = max(fpr[idxE], fnr[idxE])
    return tunedThreshold, eer, fpr, fnr


def ComputeErrorRates(scores, labels):
    """False-negative and false-positive rates (fractions) at every threshold, in threshold order."""
    order = numpy.argsort(scores, kind="mergesort")
    sorted_labels = numpy.asarray(labels)[order]
    thresholds = numpy.asarray(scores)[order]
    n_target = sorted_labels.sum()
    n_nontarget = len(sorted_labels) - n_target
    # Thresholding at each score rejects it and everything below it... plus the "accept all" point.
    fnrs = numpy.concatenate([[0.0], numpy.cumsum(sorted_labels)]) / n_target
    fprs = 1.0 - numpy.concatenate([[0.0], numpy.cumsum(1 - sorted_labels)]) / n_nontarget
    return fnrs, fprs, thresholds


def ComputeMinDcf(fnrs, fprs, thresholds, p_target, c_miss=1.0, c_fa=1.0):
    """Normalised minimum detection cost (NIST SRE definition) and the threshold that reaches it."""
    dcf = c_miss * fnrs * p_target + c_fa * fprs * (1 - p_target)
    idx = int(numpy.argmin(dcf))
    c_default = min(c_miss * p_target, c_fa * (1 - p_target))
    threshold = thresholds[min(idx, len(thresholds) - 1)]
    return dcf[idx] / c_default, threshold


def minDCF(scores, labels, p_target=0.05, c_miss=1.0, c_fa=1.0):
    """Convenience wrapper: normalised minDCF of a score list."""
    fnrs, fprs, thresholds = ComputeErrorRates(numpy.asarray(scores, dtype=numpy.float64),
                                               numpy.asarray(labels, dtype=numpy.int64))
    return ComputeMinDcf(fnrs, fprs, thresholds, p_target, c_miss, c_fa)[0]
