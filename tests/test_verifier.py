"""From recordings to a tuned verifier: --finetune (a new loss head, optionally a frozen embedding
network), --eval --calibrate (scores to log-likelihood ratios, Cllr and min-Cllr), --verify /
--verify_list (a pair's score, llr, probability and decision), and the training curves."""

import contextlib
import io
import json
import math
import os
import shutil
from typing import NamedTuple

import numpy
import pytest
import scipy.optimize
import torch
from sklearn.linear_model import LogisticRegression

import trainSpeakerNet
from voxtrainer.cli.flags import parse_args
from conftest import assert_one_error_line
from voxtrainer.scoring import calibration
from voxtrainer.data.download import file_digest
from voxtrainer.scoring.reports import curve_series, curves_figure, write_curves

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- calibration, against direct computations --------------------------------------------------

@pytest.fixture(scope="module")
def overlapping():
    """300 trials whose classes overlap, on the scale of real scores (minus a distance)."""
    rng = numpy.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    return -1.0 + 0.05 * (rng.normal(size=300) + 1.5 * labels), labels


def direct_cllr(llrs, labels):
    targets = [math.log2(1 + math.exp(-llr)) for llr, label in zip(llrs, labels) if label == 1]
    non_targets = [math.log2(1 + math.exp(llr)) for llr, label in zip(llrs, labels) if label == 0]
    return 0.5 * (sum(targets) / len(targets) + sum(non_targets) / len(non_targets))


def test_cllr_is_the_mean_log2_cost_of_targets_and_non_targets_averaged():
    llrs, labels = [2.0, -1.0, 0.5, -3.0, 1.5], [1, 1, 0, 0, 0]
    assert calibration.cllr(llrs, labels) == pytest.approx(direct_cllr(llrs, labels), rel=1e-12)
    assert calibration.cllr([0.0, 0.0], [1, 0]) == pytest.approx(1.0)  # saying nothing costs one bit
    assert calibration.cllr([800.0, -800.0], [1, 0]) == 0.0  # no overflow for steep calibrations


def test_calibration_is_scikit_learns_class_balanced_logistic_regression(overlapping):
    scores, labels = overlapping
    a, b = calibration.fit_affine(scores, labels)
    # scikit-learn's own fit of the standardised scores, mapped back to the raw score scale
    centre, spread = scores.mean(), scores.std()
    theirs = LogisticRegression(C=calibration.PENALTY_C, class_weight="balanced", tol=1e-10, max_iter=10000).fit(
        ((scores - centre) / spread).reshape(-1, 1), labels)
    slope, intercept = theirs.coef_[0, 0], theirs.intercept_[0]
    assert a == pytest.approx(slope / spread, rel=1e-9)
    assert b == pytest.approx(intercept - slope * centre / spread, rel=1e-9)


def test_calibration_is_the_affine_map_of_least_cllr(overlapping):
    scores, labels = overlapping
    a, b = calibration.fit_affine(scores, labels)
    direct = scipy.optimize.minimize(lambda ab: direct_cllr(ab[0] * scores + ab[1], labels), x0=[1.0, 0.0],
                                     method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000})
    assert (a, b) == pytest.approx(tuple(direct.x), rel=1e-3)
    assert calibration.cllr(a * scores + b, labels) <= direct.fun + 1e-9


def test_the_llr_does_not_depend_on_the_share_of_target_trials(overlapping):
    scores, labels = overlapping
    more_non_targets = numpy.concatenate([scores] + [scores[labels == 0]] * 3)
    more_labels = numpy.concatenate([labels] + [labels[labels == 0]] * 3)
    assert calibration.fit_affine(more_non_targets, more_labels) == pytest.approx(
        calibration.fit_affine(scores, labels), rel=1e-3)


def test_min_cllr_is_the_cllr_after_pav():
    # PAV pools (2: target, 3: non-target) into a posterior of 1/2; 1 and 4 are pools of one class.
    assert calibration.min_cllr([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1]) == pytest.approx(
        0.5 * ((1 + 0) / 2 + (0 + 1) / 2))
    assert calibration.min_cllr([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1]) == 0.0  # separable: perfect after PAV
    assert calibration.min_cllr([5.0] * 4, [0, 1, 0, 1]) == pytest.approx(1.0)  # no information
    # At the list's own prior (3 targets : 1 non-target) the pooled posterior 3/4 is an llr of 0.
    assert calibration.min_cllr([1.0] * 4, [1, 1, 1, 0]) == pytest.approx(1.0)


def test_min_cllr_is_no_more_than_the_cllr_of_the_fitted_calibration(overlapping):
    scores, labels = overlapping
    a, b = calibration.fit_affine(scores, labels)
    assert calibration.min_cllr(scores, labels) <= calibration.cllr(a * scores + b, labels)


@pytest.mark.parametrize("prior", [0.5, 0.01, 0.9])
def test_the_calibrated_threshold_is_where_the_posterior_is_one_half(prior):
    threshold = calibration.bayes_threshold(prior)
    assert calibration.posterior(threshold, prior) == pytest.approx(0.5)
    assert calibration.posterior(0.0, prior) == pytest.approx(prior)  # an llr of 0 leaves the prior as it was
    assert calibration.posterior(-1e4, prior) == 0.0 and calibration.posterior(1e4, prior) == 1.0


# -- training curves --------------------------------------------------------------------------

def history_of(epochs, evaluated):
    return [{"epoch": e, "lr": 0.001, "loss": 3.0 / e, "train_metric": 10.0 * e,
             "veer": 40.0 - e if e in evaluated else None,
             "min_dcf_0.05": 0.5 - 0.01 * e if e in evaluated else None,
             "min_dcf_0.01": 0.9 - 0.01 * e if e in evaluated else None} for e in epochs]


def test_curves_plot_the_loss_every_epoch_and_the_validation_at_evaluations(tmp_path):
    history = history_of(range(1, 7), evaluated={2, 4, 6})
    lines = {line.get_label(): line.get_data() for axes in curves_figure(history).axes for line in axes.get_lines()}
    assert list(lines["loss"][0]) == [1, 2, 3, 4, 5, 6] and list(lines["loss"][1]) == [3.0 / e for e in range(1, 7)]
    assert list(lines["train_metric"][1]) == [10.0 * e for e in range(1, 7)]
    assert list(lines["veer"][0]) == [2, 4, 6] and list(lines["veer"][1]) == [38.0, 36.0, 34.0]
    assert list(lines["min_dcf_0.05"][1]) == pytest.approx([0.48, 0.46, 0.44])
    assert list(lines["min_dcf_0.01"][1]) == pytest.approx([0.88, 0.86, 0.84])
    png = write_curves(history, str(tmp_path / "curves.png"), str(tmp_path / "curves.json"), "training accuracy (%)")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.load(open(tmp_path / "curves.json"))
    assert saved["series"] == json.loads(json.dumps(curve_series(history))) and saved["history"] == history


# -- the command line, end to end -------------------------------------------------------------

def common(demo, save_path, *extra):
    return ["--test_list", demo.test_list, "--test_path", demo.test_path, "--save_path", str(save_path),
            "--model", "ResNetSE34L", "--nOut", "32", "--max_frames", "100", "--batch_size", "3",
            "--test_interval", "1", "--nDataLoaderThread", "0", *extra]


def tensors(path):
    return torch.load(path, weights_only=True)


def trials_of(demo):
    rows = [line.split() for line in open(demo.test_list)]
    same = next((a, b) for label, a, b in rows if label == "1")
    different = next((a, b) for label, a, b in rows if label == "0")
    return same, different


def verify_line(capsys, demo, model, pair, *extra):
    capsys.readouterr()
    paths = [os.path.join(demo.test_path, name) for name in pair]
    assert trainSpeakerNet.main(["--verify", *paths, *common(demo, os.path.dirname(model), "--initial_model", model,
                                                            *extra)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("%s %s: score " % tuple(paths)), line
    return line


def llr(line):
    return float(line.split("llr ")[1].split(",")[0])


def probability(line):
    return float(line.split("P(same speaker) ")[1].split()[0])


@pytest.fixture(scope="module")
def tuned(demo, tmp_path_factory):
    """A base model (softmax, 6 classes), fine-tuned with amsoftmax on 3 speakers for 2 epochs,
    the first with a frozen embedding network."""
    root = tmp_path_factory.mktemp("tuned")
    assert trainSpeakerNet.main(common(demo, root / "base", "--train_list", demo.train_list, "--train_path",
                                       demo.train_path, "--trainfunc", "softmax", "--nClasses", "6",
                                       "--max_epoch", "1")) == 0
    three_speakers = root / "three_speakers.txt"
    lines = open(demo.train_list).read().splitlines()
    speakers = sorted({line.split()[0] for line in lines})[:3]
    three_speakers.write_text("".join(line + "\n" for line in lines if line.split()[0] in speakers))
    base = str(root / "base" / "model" / "model000000001.model")
    flags = common(demo, root / "tuned", "--train_list", str(three_speakers), "--train_path", demo.train_path,
                   "--trainfunc", "amsoftmax", "--finetune", "--initial_model", base, "--freeze_epochs", "1")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert trainSpeakerNet.main(flags + ["--max_epoch", "2"]) == 0
    return Tuned(root, base, flags, out.getvalue(), err.getvalue())


class Tuned(NamedTuple):
    root: object  # pathlib.Path
    base: str     # the base model
    flags: list   # the fine-tuning command (without --max_epoch)
    out: str      # what its first run printed
    err: str


def test_finetune_loads_the_embedding_network_under_a_new_head_frozen_for_the_first_epochs(tuned):
    root, base, flags, out, err = tuned
    assert "a loss head of 3 classes, one per speaker" in out
    assert "Fine-tuning from %s: loaded the embedding network" % base in out and "newly initialised" in out
    assert "loss-head parameters do not fit" not in err  # a new head is asked for, not a mismatch
    before, frozen, trained = (tensors(base), tensors(root / "tuned" / "model" / "model000000001.model"),
                               tensors(root / "tuned" / "model" / "model000000002.model"))
    network = [name for name in before if name.startswith("__S__.")]
    # Frozen epoch: weights and BatchNorm statistics are the initial model's, bit for bit.
    assert all(torch.equal(before[name], frozen[name]) for name in network)
    assert not all(torch.equal(before[name], trained[name]) for name in network)
    head = {name: value.shape for name, value in frozen.items() if name.startswith("__L__.")}
    assert head and all(3 in shape for shape in head.values())  # sized for the 3 speakers, not the base's 6
    assert all(6 not in shape for shape in head.values())


def test_a_finetune_run_resumes_without_its_initial_model_and_keeps_its_curves(tuned, capsys):
    root, base, flags = tuned[:3]
    moved = base + ".elsewhere"
    shutil.move(base, moved)  # a resumed run reads its own checkpoint only
    try:
        capsys.readouterr()
        assert trainSpeakerNet.main(flags + ["--max_epoch", "3"]) == 0
        assert "Resumed from" in capsys.readouterr().out
    finally:
        shutil.move(moved, base)
    curves = json.load(open(root / "tuned" / "result" / "curves.json"))
    assert [record["epoch"] for record in curves["history"]] == [1, 2, 3]
    assert curves["series"]["veer"][0] == [1, 2, 3] and curves["train_metric_name"] == "training accuracy (%)"
    eers = [float(open(root / "tuned" / "model" / ("model%09d.eer" % e)).read()) for e in (1, 2, 3)]
    assert curves["series"]["veer"][1] == pytest.approx(eers, abs=1e-4)
    assert open(root / "tuned" / "result" / "curves.png", "rb").read(4) == b"\x89PNG"


def test_calibrated_verification_of_a_finetuned_model(tuned, demo, capsys):
    root, base, flags = tuned[:3]
    # The fixture's own last epoch, not the newest file: another test resumes the run to epoch 3.
    model = str(root / "tuned" / "model" / "model000000002.model")
    capsys.readouterr()
    assert trainSpeakerNet.main(["--eval", "--calibrate", *common(demo, root / "eval", "--initial_model", model)]) == 0
    out = capsys.readouterr().out
    assert "Calibration written to %s.calibration.json" % model in out
    assert "Cllr " in out and "min-Cllr " in out
    saved = json.load(open(model + ".calibration.json"))
    assert saved["model"]["sha256"] == file_digest(model, "sha256") and saved["eval_frames"] == 100
    assert saved["fitted_on"]["test_list"] == os.path.abspath(demo.test_list)
    assert [point["false_accept_percent"] for point in saved["thresholds"]] == [1.0, 0.1]
    assert {"eer_percent", "min_dcf", "cllr", "min_cllr", "a", "b"} <= set(saved)

    same, different = trials_of(demo)
    same_line = verify_line(capsys, demo, model, same)
    different_line = verify_line(capsys, demo, model, different)
    # llrs, not probabilities: a tiny trial list may calibrate so steeply that both print 1.0000.
    assert llr(same_line) > llr(different_line)
    assert "at prior 0.5" in same_line and "decision: " in same_line
    assert probability(same_line) == pytest.approx(calibration.posterior(llr(same_line), 0.5), abs=1e-4)
    # The same crops and scorer as --eval: the trial's score in eval_scores.txt, to its 6 decimals.
    eval_scores = {(row[2], row[3]): row[0] for row in
                   (line.split() for line in open(root / "eval" / "result" / "eval_scores.txt"))}
    assert same_line.split("score ")[1].split(",")[0] == eval_scores[same]
    # A stated prior moves the probability, not the llr.
    low_prior = verify_line(capsys, demo, model, same, "--prior", "0.01")
    assert llr(low_prior) == llr(same_line) and "at prior 0.01" in low_prior
    assert probability(low_prior) == pytest.approx(calibration.posterior(llr(same_line), 0.01), abs=1e-4)

    pairs = root / "pairs.txt"
    pairs.write_text("%s %s\n%s %s\n" % (*same, *different))
    capsys.readouterr()
    assert trainSpeakerNet.main(["--verify_list", str(pairs), *common(demo, root / "verified", "--initial_model",
                                                                      model)]) == 0
    rows = [line.split() for line in open(root / "verified" / "result" / "verify_results.txt")]
    assert [row[:2] for row in rows] == [[os.path.join(demo.test_path, name) for name in pair]
                                         for pair in (same, different)]
    assert [float(row[4]) for row in rows] == pytest.approx([probability(same_line), probability(different_line)],
                                                            abs=1e-4)


def test_verify_errors_are_one_line(tuned, demo, tmp_path, capsys):
    root, base, flags = tuned[:3]
    wav = os.path.join(demo.test_path, trials_of(demo)[0][0])

    def verify(first, second, model=base, *extra):
        capsys.readouterr()
        status = trainSpeakerNet.main(["--verify", first, second, *common(demo, tmp_path, "--initial_model", model,
                                                                         *extra)])
        assert status == 2
        return capsys.readouterr().err

    assert_one_error_line(verify(wav, str(tmp_path / "absent.wav")), "absent.wav", "not found")
    (tmp_path / "notes.wav").write_text("not audio")
    assert_one_error_line(verify(wav, str(tmp_path / "notes.wav")), "notes.wav", "cannot read audio")
    # A calibration of another model, or of scores made another way, is refused.
    model = str(tmp_path / "copy.model")
    shutil.copy(sorted((root / "tuned" / "model").glob("model0*.model"))[-1], model)
    calibration.fit_calibration([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1], model, demo.test_list, demo.test_path, 100,
                                scoring="cosine")
    shutil.copy(model + ".calibration.json", base + ".calibration.json")
    try:
        assert_one_error_line(verify(wav, wav), base + ".calibration.json", "a calibration of another model")
    finally:
        os.remove(base + ".calibration.json")
    assert_one_error_line(verify(wav, wav, model, "--eval_frames", "50"), "copy.model.calibration.json",
                          "--eval_frames 100, not 50")
    assert_one_error_line(verify(wav, wav, model, "--trainfunc", "amsoftmax"), "copy.model.calibration.json",
                          "fitted on scores by cosine, not by crop distances")
    assert_one_error_line(verify(wav, wav, base, "--prior", "1"), "--prior")


def test_new_options_need_their_mode(demo, tmp_path, capsys):
    assert trainSpeakerNet.main(["--calibrate", *common(demo, tmp_path)]) == 2
    assert_one_error_line(capsys.readouterr().err, "--calibrate", "--eval")
    assert trainSpeakerNet.main(["--freeze_epochs", "2", *common(demo, tmp_path)]) == 2
    assert_one_error_line(capsys.readouterr().err, "--freeze_epochs 2 needs --finetune")
    assert trainSpeakerNet.main(["--finetune", "--train_list", demo.train_list, "--train_path", demo.train_path,
                                 "--trainfunc", "softmax", *common(demo, tmp_path)]) == 2
    assert_one_error_line(capsys.readouterr().err, "--finetune needs --initial_model")
    assert trainSpeakerNet.main(["--verify", "a.wav", "b.wav", "--eval", *common(demo, tmp_path)]) == 2
    assert_one_error_line(capsys.readouterr().err, "separate modes")


def test_the_seed_defaults_leave_every_new_option_off():
    args = parse_args([])
    assert (args.finetune, args.freeze_epochs, args.calibrate, args.verify, args.verify_list, args.prior) == (
        False, 0, False, None, "", 0.5)
