"""Evaluation figures: a DET curve on normal-deviate axes with the EER and minDCF marked, and a
target/non-target score histogram, checked on the matplotlib figure objects themselves."""

import numpy
import pytest
from matplotlib.image import imread
from scipy.stats import norm

from voxtrainer.scoring.reports import det_figure, histogram_figure, write_reports
from tuneThreshold import minDCF, tuneThresholdfromScore


@pytest.fixture(scope="module")
def trials():
    rng = numpy.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    return rng.normal(size=400) + 2.0 * labels, labels


def rates_at_every_threshold(scores, labels):
    """(false acceptance, miss) when accepting scores >= t, for every t, by brute force."""
    thresholds = numpy.concatenate([numpy.sort(scores), [numpy.inf]])
    return numpy.array([(numpy.mean(scores[labels == 0] >= t), numpy.mean(scores[labels == 1] < t))
                        for t in thresholds])


def line_labelled(axes, prefix):
    lines = [line for line in axes.get_lines() if line.get_label().startswith(prefix)]
    assert len(lines) == 1, [line.get_label() for line in axes.get_lines()]
    return lines[0]


def test_det_axes_are_normal_deviates_labelled_in_percent(trials):
    axes = det_figure(*trials).axes[0]
    assert axes.get_xlabel() == "False acceptance rate (%)" and axes.get_ylabel() == "False rejection rate (%)"
    for ticks, labels in ((axes.get_xticks(), axes.get_xticklabels()), (axes.get_yticks(), axes.get_yticklabels())):
        percent = numpy.array([float(label.get_text()) for label in labels])
        numpy.testing.assert_allclose(ticks, norm.ppf(percent / 100), atol=1e-9)
        assert {0.1, 1.0, 10.0, 40.0} <= set(percent)


def test_det_curve_is_the_miss_and_false_alarm_rates_of_every_threshold(trials):
    scores, labels = trials
    axes = det_figure(scores, labels).axes[0]
    x, y = line_labelled(axes, "DET").get_data()
    (x_low, x_high), (y_low, y_high) = axes.get_xlim(), axes.get_ylim()
    inside = (x > x_low) & (x < x_high) & (y > y_low) & (y < y_high)
    assert inside.sum() > 50
    expected = rates_at_every_threshold(scores, labels)
    for point in numpy.stack([norm.cdf(x[inside]), norm.cdf(y[inside])], axis=1):
        assert numpy.abs(expected - point).sum(axis=1).min() < 1e-9, point


def test_det_marks_the_trainers_eer_on_the_diagonal(trials):
    scores, labels = trials
    eer = tuneThresholdfromScore(scores, labels, [1, 0.1])[1]
    marker = line_labelled(det_figure(scores, labels).axes[0], "EER")
    assert marker.get_label() == "EER %.2f%%" % eer
    x, y = marker.get_data()
    assert x[0] == pytest.approx(norm.ppf(eer / 100)) and y[0] == pytest.approx(norm.ppf(eer / 100))


@pytest.mark.parametrize("p_target", [0.05, 0.01])
def test_det_marks_min_dcf_where_the_cost_is_lowest(trials, p_target):
    scores, labels = trials
    axes = det_figure(scores, labels).axes[0]
    marker = line_labelled(axes, "minDCF(p_target %g)" % p_target)
    rates = rates_at_every_threshold(scores, labels)
    costs = (p_target * rates[:, 1] + (1 - p_target) * rates[:, 0]) / p_target
    assert marker.get_label() == "minDCF(p_target %g) %.4f" % (p_target, minDCF(scores, labels, p_target))
    assert costs.min() == pytest.approx(minDCF(scores, labels, p_target), abs=1e-9)
    # A point off the axes (e.g. no false acceptance at all) is drawn on their edge.
    low, high = norm.cdf(axes.get_xlim())
    fa, miss = numpy.clip(rates[numpy.argmin(costs)], low, high)
    assert marker.get_data()[0][0] == pytest.approx(norm.ppf(fa)) and marker.get_data()[1][0] == pytest.approx(
        norm.ppf(miss))


def test_histogram_counts_target_and_non_target_scores_apart(trials):
    scores, labels = trials
    axes = histogram_figure(scores, labels).axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend[:2] == ["target (%d)" % sum(labels), "non-target (%d)" % sum(1 - labels)]
    target, non_target = (sum(patch.get_height() for patch in bars.patches) for bars in axes.containers)
    assert (target, non_target) == (sum(labels), sum(1 - labels))
    assert legend[2].startswith("EER threshold")


def test_reports_are_real_pngs_named_after_the_evaluation(trials, tmp_path):
    paths = write_reports(*trials, str(tmp_path / "result"), "eval")
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["eval_det.png", "eval_hist.png"]
    for path in paths:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        height, width, _ = imread(path).shape
        assert height >= 300 and width >= 300


def test_no_figures_without_both_kinds_of_trial(tmp_path, capsys):
    assert write_reports([0.1, 0.2], [1, 1], str(tmp_path), "eval") == []
    assert "target and non-target" in capsys.readouterr().out
