"""A network that gives NaN embeddings (weights or BatchNorm statistics diverged, e.g. SGD at too
high an LR) ends an evaluation, in training or with --eval, in one line naming a file and what to
do, not in sklearn's `ValueError: Input contains NaN` traceback; so do NaN or infinite scores
handed to the metrics.

The diverged network here is a checkpoint whose last BatchNorm holds a negative running variance:
finite, so it loads, and harmless in training (BatchNorm normalises by the batch's statistics
there), but sqrt(var + eps) is NaN in eval mode, as overflowing statistics make it."""

import math

import pytest
import torch

import trainSpeakerNet
from conftest import assert_one_error_line, training_flags
from voxtrainer.errors import InputError
from voxtrainer.scoring.metrics import ComputeErrorRates, equal_error_rate, min_dcfs, tuneThresholdfromScore

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NETWORK = ("--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2")
WHAT_TO_DO = "try a lower --lr (a training run keeps the checkpoints of its earlier evaluations in model/)"


@pytest.fixture(scope="module")
def diverged_checkpoint(tmp_path_factory):
    from voxtrainer.network import SpeakerNet
    torch.manual_seed(0)
    net = SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32)
    last_variance = [name for name, _ in net.named_buffers() if name.endswith("running_var")][-1]
    # far enough below zero that one training step's running average leaves it negative
    net.get_buffer(last_variance).fill_(-1e4)
    path = str(tmp_path_factory.mktemp("diverged") / "diverged.model")
    net.saveParameters(path)
    return path


def test_eval_of_a_network_with_nan_embeddings_is_one_line_naming_a_file(demo, diverged_checkpoint, tmp_path, capsys):
    status = trainSpeakerNet.main(training_flags(demo, tmp_path, *NETWORK, "--eval", "--initial_model",
                                                 diverged_checkpoint, max_frames=50))
    assert status == 2
    files = {name for line in open(demo.test_list) for name in line.split()[1:]}
    assert_one_error_line(capsys.readouterr().err, demo.test_path, "embedding is not finite",
                          "(NaN or infinite; %d of %d files)" % (len(files), len(files)), WHAT_TO_DO)
    assert not (tmp_path / "result" / "eval_scores.txt").exists()


def test_training_whose_evaluation_gives_nan_embeddings_ends_in_one_line_and_keeps_the_epoch(
        demo, diverged_checkpoint, tmp_path, capsys):
    """The training loss stays finite (batch statistics), so only the evaluation sees the NaN."""
    status = trainSpeakerNet.main(training_flags(demo, tmp_path, *NETWORK, "--initial_model", diverged_checkpoint,
                                                 max_frames=50))
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, demo.test_path, "embedding is not finite", WHAT_TO_DO)
    saved = torch.load(tmp_path / "model" / "model000000001.model", weights_only=True)
    assert all(torch.isfinite(tensor).all() for tensor in saved.values() if tensor.is_floating_point())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("metric", [
    lambda scores, labels: equal_error_rate(scores, labels),
    lambda scores, labels: tuneThresholdfromScore(scores, labels, [1, 0.1]),
    lambda scores, labels: min_dcfs(scores, labels),
    lambda scores, labels: ComputeErrorRates(scores, labels),
], ids=["eer", "thresholds", "min_dcfs", "error_rates"])
def test_metrics_of_non_finite_scores_are_an_input_error_counting_them(metric, bad):
    with pytest.raises(InputError, match=r"^1 of 4 scores are not finite \(NaN or infinite\)"):
        metric([0.9, bad, 0.2, 0.1], [1, 1, 0, 0])


def test_metrics_of_finite_scores_are_unchanged():
    """The original's values: a perfect ranking has no errors, a reversed one is all errors."""
    assert equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    assert equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 100.0
    assert min_dcfs([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == {0.05: 0.0, 0.01: 0.0}
