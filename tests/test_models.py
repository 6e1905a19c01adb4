"""Models: the original checkpoint format, embeddings equal to the original's, every encoder."""

import importlib
import json
import os

import numpy
import pytest
import torch

from conftest import ROOT
from models.pooling import ENCODERS

CONTRACT = json.load(open(os.path.join(ROOT, "tests", "data", "checkpoint_keys.json")))
MODELS = ["ResNetSE34L", "ResNetSE34", "VGGVox"]


def main_model(name, **kwargs):
    return importlib.import_module("models." + name).MainModel(**kwargs)


@pytest.mark.parametrize("combination", sorted(CONTRACT))
def test_speakernet_state_dict_has_the_original_keys_and_shapes(combination):
    from SpeakerNet import SpeakerNet
    spec = CONTRACT[combination]
    net = SpeakerNet(model=spec["model"], trainfunc=spec["trainfunc"], nOut=spec["nOut"],
                     encoder_type=spec["encoder_type"], nClasses=spec["nClasses"] or 5994)
    ours = {name: list(tensor.shape) for name, tensor in net.state_dict().items()}
    assert ours == {name: shape for name, shape in spec["state_dict"]}


def test_resnetse34l_loads_original_weights_strictly_and_reproduces_its_embedding(original):
    checkpoint = torch.load(original.checkpoint, weights_only=True)
    model = main_model("ResNetSE34L", nOut=512, encoder_type="SAP")
    model.load_state_dict({k[len("__S__."):]: v for k, v in checkpoint.items() if k.startswith("__S__.")}, strict=True)
    reference = numpy.load(original.file("embedding.npz"))
    with torch.no_grad():
        embedding = model.eval()(torch.from_numpy(reference["crops_int16"].astype(numpy.float32)))
    expected = torch.from_numpy(reference["embedding"])
    assert ((embedding - expected).abs().max() / expected.abs().max()).item() < 1e-4


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_model_and_encoder_maps_waveforms_to_embeddings(name, encoder):
    torch.manual_seed(0)
    model = main_model(name, nOut=64, encoder_type=encoder).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 16240) * 1000)
    assert out.shape == (3, 64)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_only_sap_has_attention_parameters(name):
    keys = {encoder: set(main_model(name, encoder_type=encoder).state_dict()) for encoder in ENCODERS}
    assert {"sap_linear.weight", "sap_linear.bias", "attention"} <= keys["SAP"]
    assert keys["TAP"] == keys["MAX"] == keys["SAP"] - {"sap_linear.weight", "sap_linear.bias", "attention"}


@pytest.mark.parametrize("name", MODELS)
def test_unknown_encoder_is_a_value_error_naming_the_valid_ones(name):
    with pytest.raises(ValueError, match="SAP, TAP, MAX"):
        main_model(name, encoder_type="XYZ")


def test_temporal_pooling_definitions():
    model = main_model("VGGVox", nOut=4, encoder_type="SAP")
    frames = torch.randn(2, 512, 7)
    weights = torch.softmax(torch.tanh(model.sap_linear(frames.transpose(1, 2))) @ model.attention, dim=1)
    expected = (frames.transpose(1, 2) * weights).sum(dim=1)
    assert torch.allclose(model.pool(frames), expected, atol=1e-6)
    model.encoder_type = "TAP"
    assert torch.allclose(model.pool(frames), frames.mean(dim=2))
    model.encoder_type = "MAX"
    assert torch.equal(model.pool(frames), frames.max(dim=2).values)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_calls_its_front_end_torchfb(name):
    from models.frontend import LinearSpectrogramInstanceNorm, LogMelInstanceNorm
    model = main_model(name, encoder_type="TAP")
    assert isinstance(model.torchfb, (LinearSpectrogramInstanceNorm, LogMelInstanceNorm))
    front_end_keys = {key for key in model.state_dict() if key.startswith("torchfb.")}
    # ResNetSE34's window is not a checkpoint buffer, so renaming its front end changed no key.
    expected = set() if name == "ResNetSE34" else {"torchfb.spectrogram.window", "torchfb.mel_scale.fb"}
    assert front_end_keys == expected


def test_both_resnets_are_one_class_differing_in_stem_and_strides():
    from models.ResNetBlocks import ResNetSE
    thin, fast = main_model("ResNetSE34"), main_model("ResNetSE34L")
    assert type(thin) is type(fast) is ResNetSE
    assert isinstance(thin.maxpool, torch.nn.MaxPool2d) and isinstance(fast.maxpool, torch.nn.Identity)
    assert (thin.avgpool.kernel_size, fast.avgpool.kernel_size) == ((9, 1), (5, 1))
