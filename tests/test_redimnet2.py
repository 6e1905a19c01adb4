"""WeSpeaker's ReDimNet2 (B0-B6, B6 the published model) and its tfmel front end: WeSpeaker's
parameter counts and state_dict keys (the front end's buffers included, as its checkpoint holds
them), its embeddings for the same weights and audio, its checkpoint through --extract, the
exported files, and training.

The reference values in tests/data/redimnet2_reference.npz were computed by WeSpeaker's own code at
dfa7419 (tests/data/README.md says how); tests/data/redimnet2_keys.json holds its key lists. Both
sides fill the network's keys with seeded_weights; the front-end buffers are WeSpeaker's own."""

import hashlib
import json
import os

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from conftest import ROOT, assert_one_error_line, epoch_losses, training_flags
from wespeaker_common import (SAMPLE_RATE, assert_same_embeddings, published_checkpoint, reference_arrays,
                              seeded_weights, speech_like_waveform)

DATA = os.path.join(ROOT, "tests", "data")
KEYS = json.load(open(os.path.join(DATA, "redimnet2_keys.json")))
WAVEFORM_SAMPLES = (12345, 20800)
EMBEDDING_SIZE = 192
FRONT_END = "frontend."
# WeSpeaker's parameter counts (its training script's `speaker_model size`), as it builds
# ReDimNet2B<n>(feat_dim=72, embed_dim=192, pooling_func="ASTP") with the tfmel front end attached.
PARAMETERS = {"B0": 703060, "B1": 1254992, "B2": 2530208, "B3": 2364712, "B4": 6659744, "B5": 7900456,
              "B6": 12394784}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference():
    return reference_arrays("redimnet2_reference.npz")


def redimnet2(variant):
    from models.ReDimNet2 import MainModel
    return MainModel(variant=variant)


def wespeaker_state(variant):
    """A state_dict as WeSpeaker's model holds it: seeded network weights, WeSpeaker's front end."""
    state = seeded_weights([key for key in KEYS[variant] if not key[0].startswith(FRONT_END)])
    front_end = redimnet2("B0").frontend.state_dict()
    state.update({FRONT_END + name: value for name, value in front_end.items()})
    return state


def wespeaker_checkpoint(variant, path):
    return published_checkpoint(wespeaker_state(variant), EMBEDDING_SIZE, path)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redimnet2_audio")
    names = ["w%d.wav" % samples for samples in WAVEFORM_SAMPLES]
    for name, samples in zip(names, WAVEFORM_SAMPLES):
        soundfile.write(str(folder / name), speech_like_waveform(samples), SAMPLE_RATE, subtype="PCM_16")
    (folder / "files.txt").write_text("".join(name + "\n" for name in names))
    return str(folder), str(folder / "files.txt"), names


# -- the front end --------------------------------------------------------------------------------

def test_front_end_buffers_are_wespeakers_to_the_bit(reference):
    buffers = redimnet2("B0").frontend.state_dict()
    assert numpy.array_equal(buffers["spec.torchfbank.1.flipped_filter"].numpy(), reference["flipped_filter"])
    assert numpy.array_equal(buffers["spec.torchfbank.2.melbanks_pt"].numpy(), reference["melbanks"])
    for name in ("real_kernel_pt", "image_kernel_pt"):
        kernel = buffers["spec.torchfbank.2." + name].numpy()
        assert numpy.array_equal(kernel[[0, 1, 37, 128, 255]], reference[name + "_rows"])
        numpy.testing.assert_allclose(kernel.astype(numpy.float64).sum(axis=(1, 2)), reference[name + "_row_sums"],
                                      rtol=0, atol=1e-9)
        numpy.testing.assert_allclose(kernel.astype(numpy.float64).sum(axis=(0, 1)),
                                      reference[name + "_column_sums"], rtol=0, atol=1e-9)


def test_front_end_features_are_wespeakers_for_audio_read_as_floats_in_unit_range(reference):
    from models.redimnet2_tfmel import TFMelFrontend
    waveform = torch.from_numpy(speech_like_waveform(WAVEFORM_SAMPLES[0]).astype(numpy.float32))[None]
    features = TFMelFrontend()(waveform / 32768)[0].numpy()
    assert features.shape == (72, 1 + (WAVEFORM_SAMPLES[0] + 160 - 400) // 160)
    numpy.testing.assert_allclose(features, reference["features"], rtol=0, atol=1e-5)  # measured: 0


# -- the network ----------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(PARAMETERS))
def test_parameter_count_and_state_dict_keys_are_wespeakers(variant, reference):
    net = redimnet2(variant)
    assert sum(parameter.numel() for parameter in net.parameters()) == PARAMETERS[variant]
    assert int(reference["parameters_" + variant]) == PARAMETERS[variant]
    ours = [[name, list(tensor.shape)] for name, tensor in net.state_dict().items()]
    if variant in KEYS:
        assert ours == KEYS[variant]
    assert hashlib.sha256(json.dumps(ours, separators=(",", ":")).encode()).hexdigest() == KEYS["sha256"][variant]


def test_b6_is_the_default_and_an_unknown_variant_names_the_choices():
    from models.ReDimNet2 import MainModel
    assert sum(parameter.numel() for parameter in MainModel().parameters()) == PARAMETERS["B6"]
    assert MainModel.default_nOut == EMBEDDING_SIZE
    with pytest.raises(ValueError, match="B0, B1, B2, B3, B4, B5, B6"):
        MainModel(variant="B7")


def test_an_unknown_variant_is_one_error_line(tmp_path, capsys):
    status = trainSpeakerNet.main(["--export", "onnx", "--model", "ReDimNet2", "--variant", "B9", "--initial_model",
                                   str(tmp_path / "none.pt"), "--export_out", str(tmp_path / "x.onnx")])
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, "--variant B9", "B6")


@pytest.mark.parametrize("variant", ["B0", "B6"])
def test_embeddings_are_wespeakers_for_the_same_weights_and_audio(variant, reference):
    net = redimnet2(variant).eval()
    net.load_state_dict(wespeaker_state(variant))
    with torch.no_grad():
        ours = [net(torch.from_numpy(speech_like_waveform(samples).astype(numpy.float32))[None])[0].numpy()
                for samples in WAVEFORM_SAMPLES]
    assert_same_embeddings(ours, reference["embeddings_" + variant])  # measured: 2e-7 relative


# -- WeSpeaker checkpoints ------------------------------------------------------------------------

def test_extract_of_a_published_checkpoint_without_trainfunc_gives_wespeakers_embeddings(reference, audio, tmp_path):
    folder, files, names = audio
    checkpoint = wespeaker_checkpoint("B6", tmp_path / "avg_model.pt")
    out = tmp_path / "emb.npz"
    assert trainSpeakerNet.main(["--extract", "--model", "ReDimNet2", "--initial_model", checkpoint,
                                 "--extract_list", files, "--test_path", folder, "--extract_out", str(out),
                                 "--eval_frames", "0", "--nDataLoaderThread", "0", "--device", "cpu"]) == 0
    with numpy.load(out, allow_pickle=False) as saved:
        assert list(saved["files"]) == names
        assert_same_embeddings(saved["embeddings"], reference["embeddings_B6"])


def test_a_checkpoint_of_another_size_is_one_error_line_naming_what_it_holds(audio, tmp_path, capsys):
    folder, files, _ = audio
    checkpoint = wespeaker_checkpoint("B6", tmp_path / "b6.pt")
    status = trainSpeakerNet.main(["--extract", "--model", "ReDimNet2", "--variant", "B0", "--initial_model",
                                   checkpoint, "--extract_list", files, "--test_path", folder, "--extract_out",
                                   str(tmp_path / "emb.npz"), "--eval_frames", "0", "--device", "cpu"])
    assert status == 2 and not (tmp_path / "emb.npz").exists()
    assert_one_error_line(capsys.readouterr().err, checkpoint, "WeSpeaker checkpoint", "another architecture",
                          "__S__.backbone.stem.0.weight (64, 1, 3, 3)")


# -- export ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def b0_checkpoint(tmp_path_factory):
    return wespeaker_checkpoint("B0", tmp_path_factory.mktemp("redimnet2_b0") / "b0.pt")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_embeddings_equal_pytorchs_at_two_lengths(fmt, b0_checkpoint, tmp_path):
    from voxtrainer.inference.export import run_exported
    out = str(tmp_path / ("b0." + fmt))
    assert trainSpeakerNet.main(["--export", fmt, "--model", "ReDimNet2", "--variant", "B0", "--initial_model",
                                 b0_checkpoint, "--export_out", out, "--device", "cpu"]) == 0
    net = redimnet2("B0").eval()
    net.load_state_dict(wespeaker_state("B0"))
    for samples in (9000, 27000):  # neither is the length the exporter traced on
        waveform = numpy.stack([speech_like_waveform(samples), speech_like_waveform(samples)[::-1]]).astype(
            numpy.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(waveform)).numpy()
        numpy.testing.assert_allclose(run_exported(fmt, out, waveform), expected, rtol=1e-4, atol=1e-5)


# -- training -------------------------------------------------------------------------------------

def test_three_epochs_of_the_smallest_variant_on_the_demo_set_lower_its_loss(demo, tmp_path):
    assert trainSpeakerNet.main(training_flags(
        demo, tmp_path, "--model", "ReDimNet2", "--variant", "B0", "--trainfunc", "softmax", "--nClasses", "6",
        "--max_epoch", "3", "--test_interval", "3", "--max_frames", "60", "--lr", "0.01", "--seed", "3",
        "--device", "cpu")) == 0
    losses = epoch_losses(tmp_path)
    assert len(losses) == 3
    # Measured: 1.89 -> 1.19 (seed 3; seed 4: 1.68 -> 1.22); chance level is ln 6 = 1.79.
    assert losses[-1] < 0.8 * losses[0], losses
