"""Every model option (--n_mels, --log_input, --encoder_type, --channels, --nOut) with every model that
takes it, at values the flag's type accepts: the network is built and embeds (a finite embedding of
the right size from one tiny training forward), or the option is refused in one line naming its value
(an InputError, what trainSpeakerNet.py prints as `error: ...`, exit 2). No traceback either way.
(--variant is taken by no model of this tree.)"""

import numpy
import pytest
import torch

from voxtrainer.errors import InputError
from voxtrainer.network import build_speaker_net
from voxtrainer.plugins import plugin_names

HUGE = 10 ** 12  # no machine holds a layer this wide: refused, not a crash
MEL_MODELS = ("ResNetSE34L", "ResNetSE34V2", "VGGVox")
VALUES = {
    "n_mels": (8, 9, 39, 40, 41, 46, 47, 64, 257, HUGE),
    "log_input": (True, False),
    "channels": (8, 12, 16, HUGE),
    "encoder_type": ("SAP", "ASP", "TAP", "MAX", "ASTP", "TSTP", "xyz", ""),
    "nOut": (1, 2, 3, HUGE),
}
TAKES = {"n_mels": MEL_MODELS, "log_input": ("ResNetSE34L", "ResNetSE34V2"), "channels": ("ECAPA_TDNN",)}


def cases():
    for option, values in VALUES.items():
        for model in TAKES.get(option, plugin_names("models")):
            for value in values:
                yield model, option, value


@pytest.mark.parametrize("model,option,value", list(cases()))
def test_a_model_option_builds_an_embedding_network_or_is_refused_in_one_line(model, option, value):
    options = {"nOut": 8, option: value}
    torch.manual_seed(0)
    try:
        net = build_speaker_net(model, **options)
        shortest = net.check_eval_frames(0)  # the shortest input it embeds (one line if none)
    except InputError as error:
        assert "\n" not in error.line and (str(value) in error.line or option in error.line), error.line
        return
    assert value != HUGE  # a layer of 10^12 units cannot have been built
    net.__S__.train()
    noise = numpy.random.RandomState(0).randn(2, 2 * shortest).astype(numpy.float32) * 1000
    with torch.no_grad():
        embedding = net.__S__(torch.from_numpy(noise))
    assert embedding.shape == (2, options["nOut"]) and torch.isfinite(embedding).all()


@pytest.mark.parametrize("model,n_mels", [("VGGVox", 38), ("VGGVox", 47), ("ResNetSE34V2", 41)])
def test_mel_bands_a_model_cannot_pool_are_refused_naming_the_flag(model, n_mels):
    with pytest.raises(InputError, match="--n_mels %d: %s" % (n_mels, model)):
        build_speaker_net(model, nOut=8, n_mels=n_mels)
