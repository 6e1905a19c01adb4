"""WeSpeaker's ResNet221 and ResNet293 (its best published VoxCeleb ResNets), and naming what a
refused WeSpeaker checkpoint holds.

tests/data/deepresnet_reference.npz holds the embeddings WeSpeaker's own ResNet221/ResNet293
classes give for seeded weights; tests/data/deepresnet_wespeaker_architectures.json.xz the key
names, shapes and parameter counts of every WeSpeaker architecture this project knows, read from
WeSpeaker's classes (tests/data/README.md says how). These networks are deep: inputs stay short."""

import json
import lzma
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
with lzma.open(os.path.join(DATA, "deepresnet_wespeaker_architectures.json.xz"), "rt") as stored:
    WESPEAKER = json.load(stored)
DEEP = ("ResNet221", "ResNet293")
EMBEDDING_SIZE = 256

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference():
    return reference_arrays("deepresnet_reference.npz")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """WeSpeaker-style avg_model.pt files of both networks with seeded weights, by name."""
    folder = tmp_path_factory.mktemp("deepresnet_checkpoints")
    return {name: published_checkpoint(seeded_weights(WESPEAKER[name]["keys"]), EMBEDDING_SIZE,
                                       folder / ("%s.pt" % name)) for name in DEEP}


@pytest.fixture(scope="module")
def audio(tmp_path_factory, reference):
    """The reference waveforms as WAV files and an extract list: (folder, list, names)."""
    folder = tmp_path_factory.mktemp("deepresnet_audio")
    names = ["w%d.wav" % samples for samples in reference["samples"]]
    for name, samples in zip(names, reference["samples"]):
        soundfile.write(str(folder / name), speech_like_waveform(int(samples)), SAMPLE_RATE, subtype="PCM_16")
    (folder / "files.txt").write_text("".join(name + "\n" for name in names))
    return str(folder), str(folder / "files.txt"), names


def embedding_net(model, nOut=EMBEDDING_SIZE):
    from voxtrainer.network import SpeakerNet
    return SpeakerNet(model=model, nOut=nOut).eval()


def state_shapes(keys):
    return {name: tuple(shape) for name, shape in keys}


# -- the networks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model, parameters", [("ResNet221", 23792224), ("ResNet293", 28626016)])
def test_parameter_count_and_key_names_are_wespeakers(model, parameters):
    """WeSpeaker's README: 23.79 M and 28.62 M; its classes (TSTP, 256-d embedding) count these."""
    assert WESPEAKER[model]["parameters"] == parameters
    net = embedding_net(model)
    assert trainSpeakerNet.parse_args(["--model", model]).nOut == EMBEDDING_SIZE
    assert sum(parameter.numel() for parameter in net.parameters()) == parameters
    ours = [[name, list(tensor.shape)] for name, tensor in net.state_dict().items()]
    assert ours == [["__S__." + name, shape] for name, shape in WESPEAKER[model]["keys"]]


@pytest.mark.parametrize("model", DEEP)
def test_only_wespeakers_statistics_pooling_is_accepted(model):
    import importlib
    with pytest.raises(ValueError, match="TSTP"):
        importlib.import_module("models." + model).MainModel(encoder_type="ASP")


# -- WeSpeaker checkpoints ------------------------------------------------------------------------

@pytest.mark.parametrize("model", DEEP)
def test_a_wespeaker_checkpoint_extracts_wespeakers_embeddings_without_trainfunc(model, checkpoints, reference, audio,
                                                                                 tmp_path):
    folder, files, names = audio
    out = tmp_path / "emb.npz"
    assert trainSpeakerNet.main(["--extract", "--model", model, "--initial_model", checkpoints[model],
                                 "--extract_list", files, "--test_path", folder, "--extract_out", str(out),
                                 "--eval_frames", "0", "--nDataLoaderThread", "0", "--device", "cpu"]) == 0
    with numpy.load(out, allow_pickle=False) as saved:
        assert list(saved["files"]) == names
        assert_same_embeddings(saved["embeddings"], reference["embeddings_" + model])


@pytest.mark.parametrize("checkpoint, flags, held", [
    ("ResNet221", ["--model", "ResNet293"], "holds a WeSpeaker ResNet221 (256-d embedding; --model ResNet221)"),
    ("ResNet293", ["--model", "ResNet34"], "holds a WeSpeaker ResNet293 (256-d embedding; --model ResNet293)"),
    ("ResNet221", ["--model", "ResNet221", "--nOut", "192"], "holds a WeSpeaker ResNet221 (256-d embedding"),
], ids=["deeper", "shallower", "embedding-size"])
def test_a_checkpoint_of_another_architecture_or_size_is_one_line_naming_what_it_holds(
        checkpoint, flags, held, checkpoints, audio, tmp_path, capsys):
    folder, files, _ = audio
    status = trainSpeakerNet.main(["--extract", *flags, "--initial_model", checkpoints[checkpoint],
                                   "--extract_list", files, "--test_path", folder, "--extract_out",
                                   str(tmp_path / "emb.npz"), "--device", "cpu"])
    assert status == 2 and not (tmp_path / "emb.npz").exists()
    assert_one_error_line(capsys.readouterr().err, checkpoints[checkpoint], "another architecture", held)


def test_this_projects_checkpoint_of_a_wespeaker_network_is_named_too(checkpoints, audio, tmp_path, capsys):
    from voxtrainer.checkpoints import save_state_dict
    net = embedding_net("ResNet221")
    net.loadParameters(checkpoints["ResNet221"])
    save_state_dict(net, str(tmp_path / "resnet221.model"))
    folder, files, _ = audio
    status = trainSpeakerNet.main(["--extract", "--model", "ResNet34", "--initial_model",
                                   str(tmp_path / "resnet221.model"), "--extract_list", files, "--test_path", folder,
                                   "--extract_out", str(tmp_path / "emb.npz"), "--device", "cpu"])
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, "does not fit", "holds a WeSpeaker ResNet221 (256-d embedding")


# -- naming what a checkpoint holds ---------------------------------------------------------------

@pytest.mark.parametrize("architecture", sorted(WESPEAKER))
def test_every_wespeaker_architecture_is_named_as_itself_and_no_other(architecture):
    from voxtrainer.wespeaker_models import ARCHITECTURES, fits, identify
    shapes = state_shapes(WESPEAKER[architecture]["keys"])
    assert [name for name, fingerprint, _ in ARCHITECTURES if fits(shapes, fingerprint)] == [architecture]
    # the embed_dim the key lists were read with (WeSpeaker's VoxCeleb configurations)
    embedding = next(size for prefix, size in (("ResNet", 256), ("ECAPA", 192), ("CAMPPlus", 512), ("ERes2Net", 512),
                                                ("ReDimNet2", 192)) if architecture.startswith(prefix))
    assert identify(shapes) == (architecture, embedding)
    # what a published file carries besides the network (a front end's buffers) changes nothing
    assert identify(dict(shapes, **{"frontend.mel.weight": (72, 257)})) == (architecture, embedding)


def test_every_architecture_of_the_table_is_one_of_wespeakers():
    from voxtrainer.wespeaker_models import ARCHITECTURES, PROJECT_FLAGS
    assert sorted(name for name, _, _ in ARCHITECTURES) == sorted(WESPEAKER)
    assert set(PROJECT_FLAGS) <= set(WESPEAKER)


@pytest.mark.parametrize("architecture", ["ResNet34", "ResNet221", "ECAPA_TDNN_GLOB_c512"])
def test_the_project_flags_named_for_an_architecture_build_its_keys(architecture):
    from voxtrainer.wespeaker_models import PROJECT_FLAGS
    args = trainSpeakerNet.parse_args(PROJECT_FLAGS[architecture].split())
    from voxtrainer.network import SpeakerNet
    net = SpeakerNet(model=args.model, nOut=args.nOut, channels=args.channels)
    ours = {name[len("__S__."):]: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    assert ours == state_shapes(WESPEAKER[architecture]["keys"])


def test_an_unrecognised_network_is_described_by_size_modules_and_last_weight():
    """Its parameter count leaves BatchNorm's running statistics out (they are buffers)."""
    from voxtrainer.wespeaker_models import describe
    net = torch.nn.Sequential()
    net.add_module("encoder", torch.nn.Conv1d(40, 1500, 5))
    net.add_module("norm", torch.nn.BatchNorm1d(1500))
    net.add_module("embedding", torch.nn.Linear(1500, 96))
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    assert describe(shapes) == ("an unrecognised network of %.2f M parameters (top-level modules encoder, norm, "
                                "embedding); last weight embedding.weight 96x1500"
                                % (sum(parameter.numel() for parameter in net.parameters()) / 1e6))


# -- export and training --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_gives_wespeakers_embeddings_at_any_length(fmt, checkpoints, reference, tmp_path):
    """ResNet221 only (ResNet293 is the same builder with more blocks): the exported file, traced
    on another length, gives the reference embeddings of both reference lengths."""
    from voxtrainer.inference.export import run_exported
    out = str(tmp_path / ("resnet221." + fmt))
    assert trainSpeakerNet.main(["--export", fmt, "--model", "ResNet221", "--initial_model", checkpoints["ResNet221"],
                                 "--export_out", out, "--device", "cpu"]) == 0
    exported = [run_exported(fmt, out, speech_like_waveform(int(samples)).astype(numpy.float32)[None])[0]
                for samples in reference["samples"]]
    assert_same_embeddings(exported, reference["embeddings_ResNet221"])


@pytest.mark.parametrize("model", ["ResNet221", "ResNet293"])
def test_a_short_training_on_the_demo_set_lowers_its_loss(demo_set, tmp_path, model):
    """Five seeded epochs of one step (4 speakers x one 0.2-0.3 s file, 20-frame crops), Adam at
    --lr 1e-4. At the default 1e-3 the loss jumps about: Adam's first steps move every weight by
    about the LR, and at this depth (no zero-initialised residual branches, as in WeSpeaker) the
    gradient norm at initialisation is ~1e4, mostly in the first blocks. Measured (seed 0):
    ResNet221's TLOSS 1.33 -> 0.77; seeds 1-3 fall alike."""
    demo = demo_set(n_train_speakers=4, n_test_speakers=2, utts_per_speaker=1, min_duration=0.2, max_duration=0.3)
    assert trainSpeakerNet.main(["--model", model, "--trainfunc", "softmax", "--nClasses", "4",
                                 "--eval_frames", "0", "--device", "cpu",
                                 *training_flags(demo, tmp_path, "--lr", "1e-4", "--seed", "0", "--max_epoch", "5",
                                                 "--test_interval", "5", batch_size=4, max_frames=20)]) == 0
    losses = epoch_losses(tmp_path)
    assert len(losses) == 5 and losses[-1] < 0.8 * losses[0], losses
