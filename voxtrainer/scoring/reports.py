"""Figures of an evaluation: a DET curve (normal-deviate axes, EER and minDCF marked) and a
histogram of target vs non-target scores; and the training curves of a run. All are PNGs written
with matplotlib's Agg canvas (no display, no pyplot state shared between evaluations)."""

import os

import numpy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.special import ndtri

from voxtrainer import log
from voxtrainer.atomic import atomic_output
from voxtrainer.scoring.metrics import P_TARGETS, ComputeErrorRates, equal_error_rate, min_dcf_point
# Rates (fractions) labelled on the DET axes; the axes span the first to 0.4, or to the last when
# a marked point lies beyond 0.4.
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)


def probit(rate):
    """The normal deviate of a rate: DET axes are linear in it, so Gaussian score distributions
    give straight lines."""
    return ndtri(rate)


def has_both_classes(labels):
    return len(set(int(label) for label in labels)) == 2


def operating_points(scores, labels):
    """EER (fraction), the error-rate curves, and per p_target its DcfPoint."""
    scores, labels = numpy.asarray(scores, dtype=numpy.float64), numpy.asarray(labels, dtype=numpy.int64)
    fnrs, fprs, _ = ComputeErrorRates(scores, labels)
    dcf_points = {p_target: min_dcf_point(scores, labels, p_target) for p_target in P_TARGETS}
    return equal_error_rate(scores, labels) / 100, fnrs, fprs, dcf_points


def det_figure(scores, labels, title="DET"):
    """The DET curve as a matplotlib Figure: false acceptance (x) against false rejection (y)."""
    eer, fnrs, fprs, dcf_points = operating_points(scores, labels)
    marked = [eer] + [rate for point in dcf_points.values() for rate in (point.false_accept, point.false_reject)]
    lowest, highest = DET_TICKS[0], (0.4 if max(marked) <= 0.4 else DET_TICKS[-1])

    def position(rate):
        """Rates off the axes (0 and 1 have no normal deviate) are drawn on their edge."""
        return probit(numpy.clip(rate, lowest, highest))

    figure = Figure(figsize=(6, 6))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(position(fprs), position(fnrs), color="tab:blue", label="DET")
    # The EER point is where the curve meets the diagonal.
    axes.plot(position([lowest, highest]), position([lowest, highest]), color="0.7", linestyle=":", linewidth=1)
    axes.plot([position(eer)], [position(eer)], "o", color="tab:red", clip_on=False, label="EER %.2f%%" % (100 * eer))
    for (p_target, point), marker, colour in zip(dcf_points.items(), "s^", ("tab:green", "tab:purple")):
        axes.plot([position(point.false_accept)], [position(point.false_reject)], marker, color=colour,
                  clip_on=False, label="minDCF(p_target %g) %.4f" % (p_target, point.min_dcf))

    ticks = [tick for tick in DET_TICKS if tick <= highest]
    for set_ticks, set_labels, set_limits in ((axes.set_xticks, axes.set_xticklabels, axes.set_xlim),
                                              (axes.set_yticks, axes.set_yticklabels, axes.set_ylim)):
        set_ticks(probit(ticks))
        set_labels(["%g" % (100 * tick) for tick in ticks])
        set_limits(probit(lowest), probit(highest))
    axes.set_xlabel("False acceptance rate (%)")
    axes.set_ylabel("False rejection rate (%)")
    axes.set_title(title)
    axes.grid(True, color="0.9")
    axes.legend(loc="best")
    figure.tight_layout()
    return figure


def histogram_figure(scores, labels, title="Scores"):
    """Target and non-target score histograms on shared bins, with the EER threshold."""
    scores, labels = numpy.asarray(scores, dtype=numpy.float64), numpy.asarray(labels, dtype=numpy.int64)
    fnrs, fprs, thresholds = ComputeErrorRates(scores, labels)
    crossing = int(numpy.argmin(numpy.abs(fnrs - fprs)))
    threshold = thresholds[min(crossing, len(thresholds) - 1)]
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bins = numpy.histogram_bin_edges(scores, bins=min(60, max(10, len(scores) // 20)))
    axes.hist(scores[labels == 1], bins=bins, alpha=0.6, color="tab:blue",
              label="target (%d)" % int(numpy.sum(labels == 1)))
    axes.hist(scores[labels == 0], bins=bins, alpha=0.6, color="tab:orange",
              label="non-target (%d)" % int(numpy.sum(labels == 0)))
    axes.axvline(threshold, color="tab:red", linestyle="--", label="EER threshold %.4g" % threshold)
    axes.set_xlabel("Score")
    axes.set_ylabel("Trials")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    return figure


def write_reports(scores, labels, result_dir, name):
    """`result_dir/<name>_det.png` and `<name>_hist.png`; returns their paths (none without both
    target and non-target trials, where neither figure means anything)."""
    if not has_both_classes(labels):
        log.info("No DET plot or histogram for %s: the trials need both target and non-target labels" % name)
        return []
    os.makedirs(result_dir, exist_ok=True)
    paths = []
    for suffix, make in (("det", det_figure), ("hist", histogram_figure)):
        path = os.path.join(result_dir, "%s_%s.png" % (name, suffix))
        save_figure(make(scores, labels, title="%s (%d trials)" % (name, len(scores))), path)
        paths.append(path)
    return paths


def save_figure(figure, path):
    """A Figure as a PNG at `path`, atomically."""
    with atomic_output(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")


# ---------------------------------------------------------------------------------------------
# Training curves

def curve_series(history):
    """The plotted series of a run's per-epoch history (records of voxtrainer.training.epoch_results.epoch_record):
    {name: ([epochs], [values])}; the validation series hold only the epochs that were evaluated."""
    def series(key, evaluated=False):
        chosen = [record for record in history if not evaluated or record.get("veer") is not None]
        return [record["epoch"] for record in chosen], [record[key] for record in chosen]
    out = {"loss": series("loss"), "train_metric": series("train_metric"), "veer": series("veer", True)}
    for p_target in P_TARGETS:
        key = "min_dcf_%g" % p_target
        out[key] = series(key, True)
    return out


def curves_figure(history, train_metric_name="training accuracy or EER (%)"):
    """Loss, the training metric, the validation EER and minDCF against epoch, one panel each;
    every line labelled by its series name (curve_series)."""
    data = curve_series(history)
    figure = Figure(figsize=(10, 7))
    FigureCanvasAgg(figure)
    panels = figure.subplots(2, 2)
    layout = ((panels[0][0], ("loss",), "training loss"), (panels[0][1], ("train_metric",), train_metric_name),
              (panels[1][0], ("veer",), "validation EER (%)"),
              (panels[1][1], tuple("min_dcf_%g" % p for p in P_TARGETS), "validation minDCF"))
    for axes, names, ylabel in layout:
        for name in names:
            epochs, values = data[name]
            axes.plot(epochs, values, marker="o" if len(epochs) < 30 else None, label=name)
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(True, color="0.9")
        if len(names) > 1:
            axes.legend()
    figure.tight_layout()
    return figure


def write_curves(history, png, json_path, train_metric_name="training accuracy or EER (%)"):
    """The curves as a picture (`png`) and as JSON (`json_path`: the plotted series, and the history
    they come from, which a resumed run reads back: voxtrainer.training.epoch_results.read_history),
    both atomically; returns the PNG's path."""
    import json
    from voxtrainer.atomic import write_text
    save_figure(curves_figure(history, train_metric_name), png)
    write_text(json_path,
               json.dumps({"train_metric_name": train_metric_name, "series": curve_series(history),
                           "history": history}, indent=1) + "\n")
    return png
