"""Calibrated scores: trial scores mapped to log-likelihood ratios, the Cllr and min-Cllr of a
score set, and the calibration file written beside a model.

Convention. The calibration is an affine map llr = a * score + b, fitted by logistic regression
(scikit-learn) with each class weighted by the inverse of its count (class_weight="balanced"):
the fit then sees an effective target prior of 0.5, so its log-odds output is a log-likelihood
ratio, free of the list's share of target trials. The balanced logistic loss is Cllr times
n ln 2, so the fitted map is the affine map of least Cllr on that list, up to a weak L2 penalty
on the slope (C = PENALTY_C): where a list's scores separate the classes completely, the
unpenalised optimum is infinitely steep; the penalty keeps it finite, and on lists whose classes
overlap it moves the coefficients by a negligible amount. The fit is of the standardised scores
(zero mean, unit deviation), mapped back, so that the penalty means the same whatever the
scale of the scores (minus a distance: often a spread of hundredths).
At a target prior P the posterior is sigmoid(llr + logit(P)), and the Bayes decision (accept when
the posterior is at least one half) is llr >= -logit(P): the calibrated threshold.

The file `<model>.calibration.json` names the model by its SHA-256: a calibration is of one
model's scores (and one --eval_frames, one scoring), and using it with another is refused."""

import json
import math
import os
from typing import NamedTuple

import numpy
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from voxtrainer.atomic import write_text
from voxtrainer.data.download import file_digest
from voxtrainer.errors import InputError
from voxtrainer.scoring.metrics import equal_error_rate, min_dcfs, tuneThresholdfromScore

SUFFIX = ".calibration.json"
FORMAT = 1
FALSE_ACCEPT_TARGETS = (1.0, 0.1)  # percent: the thresholds stored in the file
PENALTY_C = 1e4  # scikit-learn's inverse L2 strength (the slope only: lbfgs leaves the intercept free)


def calibration_path(model_path):
    return model_path + SUFFIX


def class_counts(labels):
    labels = numpy.asarray(labels, dtype=numpy.int64)
    targets = int(labels.sum())
    return targets, len(labels) - targets


def fit_affine(scores, labels):
    """(a, b) of llr = a * score + b: class-balanced logistic regression, a weak penalty on the
    slope (see the module's convention). Needs both target and non-target trials."""
    scores = numpy.asarray(scores, dtype=numpy.float64)
    labels = numpy.asarray(labels, dtype=numpy.int64)
    if min(class_counts(labels)) == 0:
        raise InputError("a calibration needs both target (1) and non-target (0) trials")
    centre, spread = scores.mean(), scores.std()
    if not spread > 0:
        raise InputError("a calibration needs scores that differ: all %d trials score %g" % (len(scores), centre))
    model = LogisticRegression(C=PENALTY_C, class_weight="balanced", solver="lbfgs", tol=1e-10, max_iter=10000)
    model.fit(((scores - centre) / spread).reshape(-1, 1), labels)
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    # llr = slope * (s - centre) / spread + intercept
    return slope / spread, intercept - slope * centre / spread


def cllr(llrs, labels):
    """Cllr in bits: 0.5 * (mean over targets of log2(1 + e^-llr) + mean over non-targets of
    log2(1 + e^llr)). 1 is the cost of a system that always says llr 0; 0 is perfect."""
    llrs = numpy.asarray(llrs, dtype=numpy.float64)
    labels = numpy.asarray(labels, dtype=numpy.int64)
    # logaddexp(0, x) = ln(1 + e^x) without overflow; infinite llrs of the right sign cost 0.
    target_cost = numpy.logaddexp(0.0, -llrs[labels == 1]).mean()
    non_target_cost = numpy.logaddexp(0.0, llrs[labels == 0]).mean()
    return float(0.5 * (target_cost + non_target_cost) / math.log(2))


def pav_llrs(scores, labels):
    """The llrs of the best monotone (non-decreasing) map of the scores: PAV (isotonic regression)
    gives the posterior of each score at the list's own prior; less the prior log-odds, an llr.
    Pools that hold one class only become +-infinity, which cost nothing."""
    scores = numpy.asarray(scores, dtype=numpy.float64)
    labels = numpy.asarray(labels, dtype=numpy.float64)
    targets, non_targets = class_counts(labels)
    posterior = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(scores, labels)
    with numpy.errstate(divide="ignore"):
        log_odds = numpy.log(posterior) - numpy.log1p(-posterior)
    return log_odds - math.log(targets / non_targets)


def min_cllr(scores, labels):
    """The Cllr of the scores after the best monotone calibration (pav_llrs): what is left is the
    cost of discrimination alone; Cllr - min-Cllr is the cost of mis-calibration."""
    return cllr(pav_llrs(scores, labels), labels)


def posterior(llr, prior):
    """P(same speaker | score) at a target prior: sigmoid(llr + logit(prior)), without overflow
    for the large llrs of a steep calibration."""
    return float(expit(llr + math.log(prior / (1.0 - prior))))


def bayes_threshold(prior):
    """The llr from which 'same speaker' is decided at this prior (the posterior reaches 1/2)."""
    return math.log((1.0 - prior) / prior)


class Calibration(NamedTuple):
    a: float
    b: float
    model_sha256: str
    eval_frames: int
    scoring: str    # how trials were scored (voxtrainer.scoring.evaluation.scoring_description)
    path: str       # the calibration file

    def llr(self, score):
        return self.a * score + self.b


def fit_calibration(scores, labels, model_path, test_list, test_path, eval_frames, scoring=""):
    """Fit the calibration of one model's trial scores and write it beside the model; returns
    (Calibration, summary dict: what the file holds)."""
    a, b = fit_affine(scores, labels)
    fitted = Calibration(a, b, file_digest(model_path, "sha256"), eval_frames, scoring, calibration_path(model_path))
    cost, min_cost = costs(scores, labels, fitted)
    targets, non_targets = class_counts(labels)
    tuned = tuneThresholdfromScore(scores, labels, list(FALSE_ACCEPT_TARGETS))[0]
    summary = {
        "format": FORMAT,
        "convention": "llr = a * score + b; logistic regression with class-balanced weights (an effective "
                      "target prior of 0.5, scikit-learn C=%g), so a*score+b is a log-likelihood ratio; "
                      "posterior at prior P = sigmoid(llr + logit(P))" % PENALTY_C,
        "a": a, "b": b,
        "model": {"path": os.path.abspath(model_path), "sha256": fitted.model_sha256},
        "fitted_on": {"test_list": os.path.abspath(test_list), "test_path": os.path.abspath(test_path),
                      "trials": len(labels), "targets": targets, "non_targets": non_targets},
        "eval_frames": eval_frames,
        "scoring": scoring,
        "eer_percent": equal_error_rate(scores, labels),
        "min_dcf": {"%g" % p: value for p, value in min_dcfs(scores, labels).items()},
        "cllr": cost,
        "min_cllr": min_cost,
        # null where the list has too few non-target trials for the rate (the ROC's first point
        # is an infinite threshold, accepting nothing)
        "thresholds": [{"false_accept_percent": target, "score": finite_or_none(threshold),
                        "llr": finite_or_none(fitted.llr(float(threshold))),
                        "measured_false_accept_percent": float(fa), "false_reject_percent": float(fr)}
                       for target, (threshold, fa, fr) in zip(FALSE_ACCEPT_TARGETS, tuned)],
    }
    write_text(fitted.path, json.dumps(summary, indent=2) + "\n")
    return fitted, summary


def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def read_calibration(model_path, eval_frames=None, scoring=None):
    """The calibration beside `model_path`, or None when there is none. InputError naming the
    file when it is unreadable, of another model (its SHA-256 differs), or of scores made another
    way (--eval_frames, --score_mean_from) than the caller's."""
    path = calibration_path(model_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            saved = json.load(handle)
        calibration = Calibration(float(saved["a"]), float(saved["b"]), str(saved["model"]["sha256"]),
                                  int(saved["eval_frames"]), str(saved.get("scoring", "")), path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError("%s: not a readable calibration file (%s); write it again with --eval --calibrate" % (
            path, type(error).__name__))
    if not (math.isfinite(calibration.a) and math.isfinite(calibration.b)):
        raise InputError("%s: non-finite calibration coefficients" % path)
    if calibration.model_sha256 != file_digest(model_path, "sha256"):
        raise InputError("%s: a calibration of another model (made for %s, whose SHA-256 differs from that of %s); "
                         "fit it again with --eval --calibrate --initial_model %s" % (
                             path, saved["model"].get("path", "?"), model_path, model_path))
    if eval_frames is not None and calibration.eval_frames != eval_frames:
        raise InputError("%s: fitted on scores of --eval_frames %d, not %d; use --eval_frames %d (the scores "
                         "depend on the crops)" % (path, calibration.eval_frames, eval_frames,
                                                   calibration.eval_frames))
    if scoring is not None and calibration.scoring != scoring:
        raise InputError("%s: fitted on scores by %s, not by %s; use the --trainfunc and --score_mean_from of "
                         "the calibration" % (path, calibration.scoring or "?", scoring))
    return calibration


def costs(scores, labels, calibration):
    """(Cllr of the calibrated scores, min-Cllr of the scores)."""
    return cllr(calibration.llr(numpy.asarray(scores, dtype=numpy.float64)), labels), min_cllr(scores, labels)


def cllr_line(cost, min_cost, path):
    """The line printed after the EER: costs' Cllr and min-Cllr, and the calibration file."""
    return "Cllr %.4f, min-Cllr %.4f (calibration %s)" % (cost, min_cost, path)
