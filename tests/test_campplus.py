"""WeSpeaker's CAM++ (models/CAMPPlus.py): WeSpeaker's parameters under WeSpeaker's names, and
WeSpeaker's embeddings from the same weights and audio, through the model, a WeSpeaker checkpoint
file, --extract, and ONNX and TorchScript exports of any input length; and it trains.

tests/data/campplus_reference.npz holds the embeddings WeSpeaker's own CAMPPlus class (commit
dfa7419) computed from torchaudio's Kaldi fbank, with every weight of its state_dict keys
(tests/data/campplus_keys.json) filled by `seeded_weights` (tests/data/README.md says how)."""

import json
import os

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from conftest import ROOT, assert_one_error_line, epoch_losses
from wespeaker_common import (SAMPLE_RATE, assert_same_embeddings, published_checkpoint, reference_arrays,
                              seeded_weights, speech_like_waveform)

DATA = os.path.join(ROOT, "tests", "data")
KEYS = json.load(open(os.path.join(DATA, "campplus_keys.json")))["CAMPPlus"]
WESPEAKER_PARAMETERS = 7176224  # CAMPPlus(feat_dim=80, embed_dim=512, pooling_func="TSTP"): "7.18M"
EMBEDDING_SIZE = 512
WAVEFORM_SAMPLES = (12345, 20800, 32000, 52345)  # the last: 163 frames after the stride-2 TDNN, 2 segments
FLAGS = ["--model", "CAMPPlus"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def stored():
    return reference_arrays("campplus_reference.npz")


@pytest.fixture(scope="module")
def reference(stored):
    return stored["embeddings_CAMPPlus"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A WeSpeaker avg_model.pt of CAM++ with the seeded weights and a training head."""
    return published_checkpoint(seeded_weights(KEYS), EMBEDDING_SIZE,
                                tmp_path_factory.mktemp("campplus") / "avg_model.pt")


@pytest.fixture(scope="module")
def loaded_net(checkpoint):
    net = embedding_net()
    net.loadParameters(checkpoint)
    return net


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """The test waveforms as 16-bit WAV files and an extract list of them: (folder, list, names)."""
    folder = tmp_path_factory.mktemp("campplus_audio")
    names = ["w%d.wav" % samples for samples in WAVEFORM_SAMPLES]
    for name, samples in zip(names, WAVEFORM_SAMPLES):
        soundfile.write(str(folder / name), speech_like_waveform(samples), SAMPLE_RATE, subtype="PCM_16")
    (folder / "files.txt").write_text("".join(name + "\n" for name in names))
    return str(folder), str(folder / "files.txt"), names


def embedding_net(*flags):
    from voxtrainer.network import SpeakerNet
    args = trainSpeakerNet.parse_args(FLAGS + list(flags))
    return SpeakerNet(model=args.model, nOut=args.nOut, encoder_type=args.encoder_type).eval()


def assert_wespeakers_embeddings(ours, reference):
    """Equal to 1e-4 relative; and, as the seeded network gives the waveforms embeddings that
    differ by only 1.4-3%, their differences from the mean embedding too (1e-3 relative), so that
    an error in what depends on the audio cannot hide under the shared part."""
    ours = numpy.asarray(ours, dtype=numpy.float64)
    assert_same_embeddings(ours, reference)
    centred, expected = ours - ours.mean(axis=0), reference - reference.mean(axis=0)
    for a, b in zip(centred, expected):
        assert numpy.linalg.norm(a - b) / numpy.linalg.norm(b) <= 1e-3  # measured: 4e-5 at most


# -- the network ----------------------------------------------------------------------------------

def test_the_parameter_count_is_wespeakers():
    assert sum(parameter.numel() for parameter in embedding_net().parameters()) == WESPEAKER_PARAMETERS


def test_the_state_dict_is_wespeakers_under_the_embedding_network_prefix():
    ours = [[name, list(tensor.shape)] for name, tensor in embedding_net().state_dict().items()]
    assert ours == [["__S__." + name, shape] for name, shape in KEYS]


def test_the_embedding_is_unnormalised_and_512_wide_by_default():
    assert trainSpeakerNet.parse_args(FLAGS).nOut == EMBEDDING_SIZE
    with torch.no_grad():
        out = embedding_net().embed_crops(torch.randn(2, 8000) * 1000)
    assert out.shape == (2, EMBEDDING_SIZE)
    assert not torch.allclose(out.norm(dim=1), torch.ones(2))


def test_the_segment_context_averages_each_100_frames_and_the_shorter_last_segment_alone():
    from models.CAMPPlus import segment_means
    x = torch.arange(230, dtype=torch.float32).reshape(1, 1, 230)
    means = segment_means(x)
    assert means.shape == x.shape
    assert torch.equal(means[0, 0, :100], torch.full((100,), 49.5))
    assert torch.equal(means[0, 0, 100:200], torch.full((100,), 149.5))
    assert torch.equal(means[0, 0, 200:], torch.full((30,), 214.5))


def test_the_masking_layer_is_wespeakers_with_segment_context(stored):
    """The masks hardly move the seeded network's embeddings (a global mean in place of the
    segment means changes them by 1e-5), so WeSpeaker's CAMLayer itself was run (block2's shape:
    dilation 2) on 250 frames whose three segments have their own means (the last one 50 frames)."""
    from models.CAMPPlus import CAMLayer
    prefix = "xvector.block2.tdnnd1.cam_layer."
    layer = CAMLayer(128, 32, dilation=2)
    layer.load_state_dict(seeded_weights([[name[len(prefix):], shape] for name, shape in KEYS
                                          if name.startswith(prefix)]))
    rng = numpy.random.RandomState(7)
    x = rng.randn(1, 128, 250) + numpy.repeat(rng.randn(1, 128, 3) * 2, 100, axis=2)[..., :250]
    with torch.no_grad():
        out = layer(torch.from_numpy(x.astype(numpy.float32))).numpy()
    expected = stored["cam_layer_output"]
    assert numpy.linalg.norm(out - expected) <= 1e-5 * numpy.linalg.norm(expected)  # measured: 0 (bit-equal)


def test_other_poolings_and_sizes_are_refused_in_one_line(capsys):
    for flags, needle in [(["--encoder_type", "ASP"], "--encoder_type ASP"), (["--variant", "large"], "--variant")]:
        status = trainSpeakerNet.main(FLAGS + flags + ["--eval", "--initial_model", "none.model"])
        assert status == 2
        assert_one_error_line(capsys.readouterr().err, needle)


# -- WeSpeaker's embeddings -----------------------------------------------------------------------

def test_a_wespeaker_checkpoint_loads_as_it_is_and_gives_wespeakers_embeddings(loaded_net, reference):
    loaded = loaded_net.state_dict()
    for name, value in seeded_weights(KEYS).items():
        if name.endswith("num_batches_tracked"):
            assert loaded["__S__." + name].item() == 1234
        else:
            assert torch.equal(loaded["__S__." + name], value), name
    ours = [loaded_net.embed(speech_like_waveform(samples), eval_frames=0).numpy() for samples in WAVEFORM_SAMPLES]
    assert_wespeakers_embeddings(ours, reference)


def test_extract_without_trainfunc_writes_wespeakers_embeddings(checkpoint, reference, audio, tmp_path):
    folder, files, names = audio
    out = tmp_path / "emb.npz"
    assert trainSpeakerNet.main(["--extract", *FLAGS, "--initial_model", checkpoint, "--extract_list", files,
                                 "--test_path", folder, "--extract_out", str(out), "--eval_frames", "0",
                                 "--nDataLoaderThread", "0", "--device", "cpu"]) == 0
    with numpy.load(out, allow_pickle=False) as saved:
        assert list(saved["files"]) == names
        assert_wespeakers_embeddings(saved["embeddings"], reference)


@pytest.fixture(scope="module")
def resnet34_checkpoint(tmp_path_factory):
    keys = json.load(open(os.path.join(DATA, "wespeaker_keys.json")))["ResNet34"]
    return published_checkpoint(seeded_weights(keys), 256, tmp_path_factory.mktemp("resnet34") / "avg_model.pt")


@pytest.mark.parametrize("flags, held", [
    (["--model", "ECAPA_TDNN"], "campplus"), (FLAGS + ["--nOut", "192"], "campplus"),
    (FLAGS + ["--nOut", "256"], "resnet34")], ids=["CAM++ into ECAPA", "CAM++ 512 into 192", "ResNet34 into CAM++"])
def test_a_checkpoint_of_another_architecture_or_size_is_one_error_line(flags, held, checkpoint, resnet34_checkpoint,
                                                                      audio, tmp_path, capsys):
    folder, files, _ = audio
    path = checkpoint if held == "campplus" else resnet34_checkpoint
    status = trainSpeakerNet.main(["--extract", *flags, "--initial_model", path, "--extract_list", files,
                                   "--test_path", folder, "--extract_out", str(tmp_path / "emb.npz"),
                                   "--device", "cpu"])
    assert status == 2 and not (tmp_path / "emb.npz").exists()
    assert_one_error_line(capsys.readouterr().err, path, "WeSpeaker checkpoint", "another architecture")


# -- export ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_the_exported_network_gives_pytorchs_embeddings_at_any_length(fmt, checkpoint, loaded_net, tmp_path):
    """Traced on 100 frames; checked on 76 and on 254 frames, whose masks see a partial
    100-frame segment (38 frames; 100 + 27 frames after the stride-2 TDNN)."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    from voxtrainer.inference.export import run_exported
    out = str(tmp_path / ("campplus." + fmt))
    assert trainSpeakerNet.main(["--export", fmt, *FLAGS, "--initial_model", checkpoint, "--export_out", out,
                                 "--device", "cpu"]) == 0
    for samples in (12345, 41000):
        waveform = speech_like_waveform(samples).astype(numpy.float32)[None]
        expected = loaded_net.embed_crops(torch.from_numpy(waveform)).numpy()
        numpy.testing.assert_allclose(run_exported(fmt, out, waveform), expected, rtol=1e-4, atol=1e-5)


# -- training -------------------------------------------------------------------------------------

def test_training_on_the_demo_set_lowers_the_loss(demo_set, tmp_path):
    """Two seeded epochs of AAM-softmax on 4 speakers x 2 utterances: the second epoch's mean loss
    is well under the first's (8.5 -> 1.7, measured), the same every run."""
    demo = demo_set(n_train_speakers=4, n_test_speakers=2, utts_per_speaker=2, max_duration=1.2)
    assert trainSpeakerNet.main([
        *FLAGS, "--nOut", "32", "--trainfunc", "aamsoftmax", "--margin", "0.2", "--scale", "32", "--nClasses", "4",
        "--train_list", demo.train_list, "--test_list", demo.test_list, "--train_path", demo.train_path,
        "--test_path", demo.test_path, "--save_path", str(tmp_path), "--max_frames", "100", "--batch_size", "4",
        "--max_epoch", "2", "--test_interval", "2", "--seed", "1", "--nDataLoaderThread", "0",
        "--device", "cpu"]) == 0
    losses = epoch_losses(tmp_path)
    assert len(losses) == 2  # epochs 1 and 2, in order
    assert losses[1] < 0.5 * losses[0], losses
    assert os.path.isfile(tmp_path / "model" / "model000000002.model")
