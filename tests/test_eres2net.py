"""WeSpeaker's ERes2Net: its parameter counts and key names for each builder (--variant), its
embeddings for fixed weights (computed by WeSpeaker's own code: tests/data/README.md), its
published-checkpoint format loaded as it is, exports of a dynamic input length, and training.

No published weights are stored: both sides fill WeSpeaker's state_dict keys
(tests/data/eres2net_keys.json) with the deterministic values of `seeded_weights`."""

import json
import os

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from conftest import ROOT, assert_one_error_line, epoch_losses, training_flags
from wespeaker_common import (SAMPLE_RATE, assert_fbank_float32_under_bf16, assert_same_embeddings,
                              published_checkpoint, reference_arrays, seeded_weights, speech_like_waveform)

DATA = os.path.join(ROOT, "tests", "data")
KEYS = json.load(open(os.path.join(DATA, "eres2net_keys.json")))
BASE = "ERes2Net34_Base"
EMBEDDING_SIZE = 512  # embed_dim of WeSpeaker's examples/voxceleb/v2/conf/eres2net.yaml
WAVEFORM_SAMPLES = (12345, 20800, 32000)
EXPORT_SAMPLES = (6789, 9876)
FLAGS = ["--model", "ERes2Net", "--eval_frames", "0", "--nDataLoaderThread", "0", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def embedding_net(*flags):
    from voxtrainer.network import SpeakerNet
    args = trainSpeakerNet.parse_args(["--model", "ERes2Net", *flags])
    return SpeakerNet(model=args.model, nOut=args.nOut, variant=args.variant).eval()


@pytest.fixture(scope="module")
def reference():
    return reference_arrays("eres2net_reference.npz")["embeddings_" + BASE]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An avg_model.pt as WeSpeaker publishes it, of ERes2Net34_Base with the seeded weights."""
    path = tmp_path_factory.mktemp("eres2net_checkpoint") / "avg_model.pt"
    return published_checkpoint(seeded_weights(KEYS[BASE]), EMBEDDING_SIZE, path)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """The test waveforms as 16-bit WAV files and an extract list of them: (folder, list, names)."""
    folder = tmp_path_factory.mktemp("eres2net_audio")
    names = ["w%d.wav" % samples for samples in WAVEFORM_SAMPLES]
    for name, samples in zip(names, WAVEFORM_SAMPLES):
        soundfile.write(str(folder / name), speech_like_waveform(samples), SAMPLE_RATE, subtype="PCM_16")
    (folder / "files.txt").write_text("".join(name + "\n" for name in names))
    return str(folder), str(folder / "files.txt"), names


# -- the architecture -----------------------------------------------------------------------------

@pytest.mark.parametrize("variant, flags, parameters", [
    (BASE, [], 9887808), (BASE, ["--variant", "Base", "--nOut", "192"], 6610688),
    ("ERes2Net34_Large", ["--variant", "ERes2Net34_Large"], 29016704),
    ("ERes2Net34_aug", ["--variant", "aug"], 68272544)])
def test_parameter_counts_and_key_names_are_wespeakers_for_each_builder(variant, flags, parameters):
    """9,887,808 for ERes2Net34_Base as eres2net.yaml builds it (embed_dim 512); WeSpeaker's README
    table says 7.88 M, which no embedding size of its code gives (192 gives 6,610,688)."""
    with torch.device("meta"):
        net = embedding_net(*flags)
    assert sum(parameter.numel() for parameter in net.parameters()) == parameters
    ours = [[name, list(tensor.shape)] for name, tensor in net.state_dict().items()]
    if "--nOut" not in flags:
        assert ours == [["__S__." + name, shape] for name, shape in KEYS[variant]]


def test_the_default_is_the_base_model_with_wespeakers_512_dimensional_embedding():
    args = trainSpeakerNet.parse_args(["--model", "ERes2Net"])
    assert args.nOut == EMBEDDING_SIZE and args.variant is None
    with torch.no_grad():
        out = embedding_net().embed_crops(torch.randn(2, 8240) * 1000)
    assert out.shape == (2, EMBEDDING_SIZE)
    assert not torch.allclose(out.norm(dim=1), torch.ones(2))  # WeSpeaker's embedding, unnormalised


def test_an_unknown_variant_is_a_value_error_naming_the_choices():
    from models.ERes2Net import MainModel
    with pytest.raises(ValueError, match="--variant B9: ERes2Net comes as ERes2Net34_Base, ERes2Net34_Large, "
                                         "ERes2Net34_aug"):
        MainModel(variant="B9")


def test_an_unknown_variant_on_the_command_line_is_one_error_line(audio, tmp_path, capsys):
    folder, files, _ = audio
    status = trainSpeakerNet.main(["--extract", *FLAGS, "--variant", "Huge", "--extract_list", files,
                                   "--test_path", folder, "--extract_out", str(tmp_path / "emb.npz")])
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, "--variant Huge", BASE, "Large", "aug")


def test_under_bf16_autocast_the_fbank_stays_float32_and_the_embedding_close(checkpoint):
    net = embedding_net()
    net.loadParameters(checkpoint)
    assert_fbank_float32_under_bf16(net, speech_like_waveform(WAVEFORM_SAMPLES[0]))


# -- WeSpeaker checkpoints ------------------------------------------------------------------------

def test_a_wespeaker_checkpoint_loads_as_it_is_and_gives_wespeakers_embeddings(checkpoint, reference):
    net = embedding_net()
    net.loadParameters(checkpoint)
    loaded = net.state_dict()
    for name, value in seeded_weights(KEYS[BASE]).items():
        if name.endswith("num_batches_tracked"):  # a float count in the file, an integer here
            assert loaded["__S__." + name].dtype == torch.long and loaded["__S__." + name].item() == 1234
        else:
            assert torch.equal(loaded["__S__." + name], value), name
    ours = [net.embed(speech_like_waveform(samples), eval_frames=0).numpy() for samples in WAVEFORM_SAMPLES]
    assert_same_embeddings(ours, reference)  # measured: at most 1.1e-6 relative


def test_extract_without_trainfunc_writes_wespeakers_embeddings(checkpoint, reference, audio, tmp_path):
    folder, files, names = audio
    out = tmp_path / "emb.npz"
    assert trainSpeakerNet.main(["--extract", *FLAGS, "--initial_model", checkpoint, "--extract_list", files,
                                 "--test_path", folder, "--extract_out", str(out)]) == 0
    with numpy.load(out, allow_pickle=False) as saved:
        assert list(saved["files"]) == names
        assert_same_embeddings(saved["embeddings"], reference)


def resnet34_checkpoint(path):
    keys = json.load(open(os.path.join(DATA, "wespeaker_keys.json")))["ResNet34"]
    return published_checkpoint(seeded_weights(keys), 256, path)


@pytest.mark.parametrize("other", ["the Large size", "WeSpeaker's ResNet34"])
def test_a_checkpoint_of_another_size_or_architecture_is_one_error_line(other, checkpoint, audio, tmp_path,
                                                                        capsys):
    folder, files, _ = audio
    if other == "the Large size":
        given, flags, held = checkpoint, ["--variant", "Large"], "__S__.conv1.weight (32, 1, 3, 3)"
    else:
        given, flags, held = resnet34_checkpoint(tmp_path / "resnet34.pt"), ["--nOut", "256"], "__S__.layer1.0"
    status = trainSpeakerNet.main(["--extract", *FLAGS, *flags, "--initial_model", given, "--extract_list",
                                   files, "--test_path", folder, "--extract_out", str(tmp_path / "emb.npz")])
    assert status == 2 and not (tmp_path / "emb.npz").exists()
    assert_one_error_line(capsys.readouterr().err, given, "WeSpeaker checkpoint", "another architecture", held)


# -- export ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_gives_pytorchs_embeddings_at_any_input_length(fmt, checkpoint, tmp_path):
    from voxtrainer.inference.export import run_exported
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = str(tmp_path / ("eres2net." + fmt))
    assert trainSpeakerNet.main(["--export", fmt, *FLAGS, "--initial_model", checkpoint, "--export_out", out]) == 0
    net = embedding_net()
    net.loadParameters(checkpoint)
    for samples in EXPORT_SAMPLES:  # neither is the length the export was traced on
        waveform = speech_like_waveform(samples).astype(numpy.float32)[None]
        with torch.no_grad():
            expected = net.embed_crops(torch.from_numpy(waveform)).numpy()
        exported = run_exported(fmt, out, waveform)
        assert exported.shape == (1, EMBEDDING_SIZE)
        assert_same_embeddings(exported, expected)


# -- training -------------------------------------------------------------------------------------

def training_batch(demo, samples):
    """The first `samples` of every training file and its class (speakers in sorted order, as the
    trainer numbers them): (data (files, 1, samples), labels)."""
    rows = [line.split() for line in open(demo.train_list).read().splitlines()]
    speakers = sorted({speaker for speaker, _ in rows})
    crops = [soundfile.read(os.path.join(demo.train_path, name), dtype="int16")[0][:samples] for _, name in rows]
    data = torch.from_numpy(numpy.stack(crops).astype(numpy.float32))[:, None]
    return data, torch.tensor([speakers.index(speaker) for speaker, _ in rows])


def training_loss(checkpoint, data, labels):
    """The softmax loss of a checkpoint on the batch, with batch statistics (BatchNorm in training
    mode, as in a training step), weights unchanged."""
    from voxtrainer.network import SpeakerNet
    net = SpeakerNet(model="ERes2Net", trainfunc="softmax", nOut=32, nClasses=4)
    net.loadParameters(checkpoint)
    net.train()
    with torch.no_grad():
        return net(data, labels)[0].item()


def test_a_short_training_on_the_demo_set_lowers_the_training_loss(demo_set, tmp_path):
    """Four epochs of two steps (the tiny demo set's 4 speakers x 2 utterances, one epoch being two
    batches of 4), from a saved untrained network, so that both losses are of known weights: the
    epoch loss falls, and so does the loss on one fixed batch (every training file's first half
    second), to under half. Measured: 1.98 -> 0.70 per epoch, 1.49 -> 0.62 on the batch."""
    from voxtrainer.network import SpeakerNet
    demo = demo_set(n_train_speakers=4, n_test_speakers=2, utts_per_speaker=2, max_duration=1.2)
    torch.manual_seed(0)
    initial = str(tmp_path / "initial.model")
    SpeakerNet(model="ERes2Net", trainfunc="softmax", nOut=32, nClasses=4).saveParameters(initial)
    assert trainSpeakerNet.main(training_flags(
        demo, tmp_path / "run", "--model", "ERes2Net", "--variant", "Base", "--trainfunc", "softmax", "--nClasses",
        "4", "--nPerSpeaker", "1", "--lr", "0.0001", "--initial_model", initial, "--seed", "1", "--max_epoch", "4",
        "--test_interval", "4", "--eval_frames", "0", "--device", "cpu", batch_size=4, max_frames=50)) == 0
    losses = epoch_losses(tmp_path / "run")
    assert len(losses) == 4 and losses[-1] < 0.6 * losses[0], losses
    data, labels = training_batch(demo, 50 * 160 + 240)
    before = training_loss(initial, data, labels)
    after = training_loss(str(tmp_path / "run" / "model" / "model000000004.model"), data, labels)
    assert after < 0.5 * before, (before, after)
