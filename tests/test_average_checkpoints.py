"""--average_last N: the element-wise mean of the last N saved models, in the original format."""

import os

import pytest
import torch

import trainSpeakerNet
from SpeakerNet import SpeakerNet
from voxtrainer.experiment import ExperimentFolder


@pytest.fixture
def saved(tmp_path):
    """Three epochs of a tiny model in <save_path>/model, each with different weights."""
    os.makedirs(tmp_path / "model")
    for epoch in (1, 2, 3):
        torch.manual_seed(epoch)
        net = SpeakerNet(model="ResNetSE34L", trainfunc="softmax", nOut=32, nClasses=4)
        for buffer in net.buffers():
            if not buffer.is_floating_point():
                buffer.fill_(10 * epoch)  # BatchNorm's num_batches_tracked
        net.saveParameters(str(tmp_path / "model" / ("model%09d.model" % epoch)))
    return tmp_path


def load(path):
    return torch.load(path, weights_only=True)


def test_the_last_n_models_are_averaged_into_one_model_of_the_original_format(saved, capsys):
    assert trainSpeakerNet.main(["--average_last", "2", "--save_path", str(saved)]) == 0
    out = saved / "model" / "average_last2.model"
    assert str(out) in capsys.readouterr().out
    average, second, third = load(out), load(saved / "model" / "model000000002.model"), load(
        saved / "model" / "model000000003.model")
    assert list(average) == list(third)
    for name, value in average.items():
        assert value.dtype == third[name].dtype and value.shape == third[name].shape
        if value.is_floating_point():
            assert torch.allclose(value, (second[name] + third[name]) / 2, rtol=1e-6, atol=1e-7), name
        else:
            assert torch.equal(value, third[name])  # a count: the newest model's
    net = SpeakerNet(model="ResNetSE34L", trainfunc="softmax", nOut=32, nClasses=4)
    net.loadParameters(str(out))
    # Training resumes from model0*.model files only: the average is not mistaken for an epoch.
    assert ExperimentFolder(str(saved)).model_files()[-1].endswith("model000000003.model")


@pytest.mark.parametrize("count, message", [("5", "only 3 saved model(s)"), ("-1", "(>= 1)")])
def test_too_few_models_is_one_clear_error(saved, capsys, count, message):
    assert trainSpeakerNet.main(["--average_last", count, "--save_path", str(saved)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --average_last %s" % count) and message in err and "\n" not in err


def test_models_of_different_networks_are_not_averaged(saved, capsys):
    SpeakerNet(model="VGGVox", trainfunc="softmax", nOut=32, nClasses=4).saveParameters(
        str(saved / "model" / "model000000004.model"))
    assert trainSpeakerNet.main(["--average_last", "2", "--save_path", str(saved)]) == 2
    assert "model000000003.model: its tensors differ" in capsys.readouterr().err
