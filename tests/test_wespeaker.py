"""WeSpeaker's ResNet34 and ECAPA-TDNN: the same features (Kaldi fbank), the same network, so a
WeSpeaker checkpoint gives WeSpeaker's embeddings through --initial_model, and WeSpeaker's scoring
(cosine after subtracting a mean embedding).

The reference values in tests/data/wespeaker_reference.npz were computed by WeSpeaker's own model
classes and torchaudio's Kaldi fbank (tests/data/README.md says how). No published weights are
stored: both sides fill WeSpeaker's state_dict keys (tests/data/wespeaker_keys.json) with the
deterministic values of `seeded_state_dict`."""

import json
import os

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from voxtrainer.cli.flags import parse_args
from conftest import ROOT, assert_one_error_line
from wespeaker_common import (SAMPLE_RATE, assert_fbank_float32_under_bf16, assert_same_embeddings,
                              published_checkpoint, reference_arrays, seeded_weights, speech_like_waveform)

DATA = os.path.join(ROOT, "tests", "data")
KEYS = json.load(open(os.path.join(DATA, "wespeaker_keys.json")))
# The WeSpeaker architectures of the reference and this project's flags for them.
ARCHITECTURES = {"ResNet34": ["--model", "ResNet34"], "ECAPA_TDNN_GLOB_c512": ["--model", "ECAPA_TDNN",
                                                                             "--channels", "512"]}
EMBEDDING_SIZES = {"ResNet34": 256, "ECAPA_TDNN_GLOB_c512": 192}
WAVEFORM_SAMPLES = (12345, 20800, 32000)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def seeded_state_dict(architecture):
    return seeded_weights(KEYS[architecture])


def wespeaker_checkpoint(architecture, path):
    return published_checkpoint(seeded_state_dict(architecture), EMBEDDING_SIZES[architecture], path)


@pytest.fixture(scope="module")
def reference():
    return reference_arrays("wespeaker_reference.npz")


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """The test waveforms as 16-bit WAV files and an extract list of them: (folder, list, names)."""
    folder = tmp_path_factory.mktemp("wespeaker_audio")
    names = ["w%d.wav" % samples for samples in WAVEFORM_SAMPLES]
    for name, samples in zip(names, WAVEFORM_SAMPLES):
        soundfile.write(str(folder / name), speech_like_waveform(samples), SAMPLE_RATE, subtype="PCM_16")
    (folder / "files.txt").write_text("".join(name + "\n" for name in names))
    return str(folder), str(folder / "files.txt"), names


def embedding_net(architecture):
    from voxtrainer.network import SpeakerNet
    args = parse_args(ARCHITECTURES[architecture])
    return SpeakerNet(model=args.model, nOut=args.nOut, channels=args.channels).eval()


# -- the Kaldi fbank ------------------------------------------------------------------------------

def test_kaldi_fbank_equals_torchaudio_kaldi_fbank_with_wespeaker_settings(reference):
    from models.kaldi import kaldi_fbank
    for index in range(2):
        waveform = torch.from_numpy(speech_like_waveform(WAVEFORM_SAMPLES[index])[:8000].astype(numpy.float32))
        difference = numpy.abs(kaldi_fbank(waveform).numpy() - reference["fbank%d" % index])
        assert difference.shape == (1 + (8000 - 400) // 160, 80)
        assert (difference <= 1e-4).mean() >= 0.995 and difference.max() <= 1e-2
        assert difference.max() <= 1e-3  # measured: 5e-5


def test_kaldi_fbank_snips_edges_floors_silence_and_subtracts_the_mean_over_time_on_request():
    from models.kaldi import FLOAT_EPSILON, kaldi_fbank
    waveform = torch.from_numpy(speech_like_waveform(4321).astype(numpy.float32))
    features = kaldi_fbank(waveform)
    assert features.shape == (1 + (4321 - 400) // 160, 80)
    silent = kaldi_fbank(torch.zeros(400))
    assert torch.equal(silent, torch.full((1, 80), numpy.log(FLOAT_EPSILON), dtype=torch.float32))
    normalised = kaldi_fbank(waveform, subtract_mean=True)
    torch.testing.assert_close(normalised, features - features.mean(dim=0), rtol=0, atol=1e-5)
    batch = kaldi_fbank(torch.stack([waveform, waveform.flip(0)]))
    torch.testing.assert_close(batch[1], kaldi_fbank(waveform.flip(0)), rtol=0, atol=1e-4)


def test_no_front_end_tensor_is_a_checkpoint_tensor():
    from models.kaldi import KaldiFbank
    assert KaldiFbank().state_dict() == {}


# -- the networks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model, flags, parameters", [
    ("ResNet34", [], 6634336), ("ECAPA_TDNN", ["--channels", "512"], 6190720),
    ("ECAPA_TDNN", ["--channels", "1024"], 14657088), ("ResNet18", [], 4105440), ("ResNet50", [], 11131360)])
def test_parameter_counts_are_wespeakers(model, flags, parameters):
    from voxtrainer.network import SpeakerNet
    args = parse_args(["--model", model, *flags])
    net = SpeakerNet(model=args.model, nOut=args.nOut, channels=args.channels)
    assert sum(parameter.numel() for parameter in net.parameters()) == parameters


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_the_state_dict_is_wespeakers_under_the_embedding_network_prefix(architecture):
    ours = {name: list(tensor.shape) for name, tensor in embedding_net(architecture).state_dict().items()}
    assert ours == {"__S__." + name: shape for name, shape in KEYS[architecture]}


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_embeddings_are_unnormalised_and_of_wespeakers_size_by_default(architecture):
    net = embedding_net(architecture)
    assert parse_args(ARCHITECTURES[architecture]).nOut == EMBEDDING_SIZES[architecture]
    assert parse_args(["--model", "ResNetSE34L"]).nOut == 512
    with torch.no_grad():
        out = net.embed_crops(torch.randn(2, 16000) * 1000)
    assert out.shape == (2, EMBEDDING_SIZES[architecture])
    assert not torch.allclose(out.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_under_bf16_autocast_the_fbank_stays_float32_and_the_embedding_close(architecture):
    net = embedding_net(architecture)
    net.load_state_dict({"__S__." + name: value for name, value in seeded_state_dict(architecture).items()})
    assert_fbank_float32_under_bf16(net, speech_like_waveform(WAVEFORM_SAMPLES[0]))


# -- WeSpeaker checkpoints ------------------------------------------------------------------------

@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_a_wespeaker_checkpoint_loads_as_it_is_and_gives_wespeakers_embeddings(architecture, reference, tmp_path):
    net = embedding_net(architecture)
    net.loadParameters(wespeaker_checkpoint(architecture, tmp_path / "avg_model.pt"))
    loaded = net.state_dict()
    for name, value in seeded_state_dict(architecture).items():
        if name.endswith("num_batches_tracked"):  # a float count in the file, an integer here
            assert loaded["__S__." + name].dtype == torch.long and loaded["__S__." + name].item() == 1234
        else:
            assert torch.equal(loaded["__S__." + name], value), name
    ours = [net.embed(speech_like_waveform(samples), eval_frames=0).numpy() for samples in WAVEFORM_SAMPLES]
    assert_same_embeddings(ours, reference["embeddings_" + architecture])


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_extract_without_trainfunc_writes_wespeakers_embeddings(architecture, reference, audio, tmp_path):
    folder, files, names = audio
    checkpoint = wespeaker_checkpoint(architecture, tmp_path / "model.pt")
    out = tmp_path / "emb.npz"
    assert trainSpeakerNet.main(["--extract", *ARCHITECTURES[architecture], "--initial_model", checkpoint,
                                 "--extract_list", files, "--test_path", folder, "--extract_out", str(out),
                                 "--eval_frames", "0", "--nDataLoaderThread", "0", "--device", "cpu"]) == 0
    with numpy.load(out, allow_pickle=False) as saved:
        assert list(saved["files"]) == names
        assert_same_embeddings(saved["embeddings"], reference["embeddings_" + architecture])


def test_a_wespeaker_checkpoint_of_another_architecture_is_one_error_line(audio, tmp_path, capsys):
    folder, files, _ = audio
    checkpoint = wespeaker_checkpoint("ResNet34", tmp_path / "resnet34.pt")
    status = trainSpeakerNet.main(["--extract", "--model", "ECAPA_TDNN", "--initial_model", checkpoint,
                                   "--extract_list", files, "--test_path", folder, "--extract_out",
                                   str(tmp_path / "emb.npz"), "--eval_frames", "0", "--device", "cpu"])
    assert status == 2 and not (tmp_path / "emb.npz").exists()
    assert_one_error_line(capsys.readouterr().err, checkpoint, "WeSpeaker checkpoint", "another architecture",
                          "holds a WeSpeaker ResNet34 (256-d embedding; --model ResNet34)")


def test_export_without_trainfunc_writes_the_unnormalised_embedding_network(tmp_path):
    from voxtrainer.inference.export import run_exported
    checkpoint = wespeaker_checkpoint("ECAPA_TDNN_GLOB_c512", tmp_path / "ecapa.pt")
    out = str(tmp_path / "ecapa.torchscript")
    assert trainSpeakerNet.main(["--export", "torchscript", "--model", "ECAPA_TDNN", "--initial_model", checkpoint,
                                 "--export_out", out, "--device", "cpu"]) == 0
    waveform = speech_like_waveform(WAVEFORM_SAMPLES[0]).astype(numpy.float32)[None]
    net = embedding_net("ECAPA_TDNN_GLOB_c512")
    net.loadParameters(checkpoint)
    expected = net.embed_crops(torch.from_numpy(waveform)).numpy()
    numpy.testing.assert_allclose(run_exported("torchscript", out, waveform), expected, rtol=1e-4, atol=1e-5)


# -- WeSpeaker's scoring --------------------------------------------------------------------------

def test_eval_scores_by_cosine_after_subtracting_the_mean_embedding(reference, audio, tmp_path):
    """WeSpeaker's published figures: cosine of embeddings less the mean embedding of a set (its
    training set); the one scorer gives -||a - b|| of the centred unit vectors = -sqrt(2 - 2 cos)."""
    folder, files, names = audio
    checkpoint = wespeaker_checkpoint("ResNet34", tmp_path / "resnet34.pt")
    trials = tmp_path / "trials.txt"
    trials.write_text("1 %s %s\n0 %s %s\n1 %s %s\n" % (names[0], names[1], names[0], names[2], names[1], names[2]))
    mean_file = tmp_path / "mean.npy"
    mean = numpy.random.RandomState(5).randn(256).astype(numpy.float32) * 0.3
    numpy.save(mean_file, mean)
    assert trainSpeakerNet.main(["--eval", "--model", "ResNet34", "--initial_model", checkpoint, "--test_list",
                                 str(trials), "--test_path", folder, "--eval_frames", "0", "--score_mean_from",
                                 str(mean_file), "--save_path", str(tmp_path / "run"), "--nDataLoaderThread", "0",
                                 "--device", "cpu"]) == 0
    scores = [float(line.split()[0]) for line in open(tmp_path / "run" / "result" / "eval_scores.txt")]
    centred = reference["embeddings_ResNet34"] - mean
    unit = centred / numpy.linalg.norm(centred, axis=1, keepdims=True)
    cosine = [unit[0] @ unit[1], unit[0] @ unit[2], unit[1] @ unit[2]]
    numpy.testing.assert_allclose(scores, -numpy.sqrt(2 - 2 * numpy.array(cosine)), atol=2e-4)


def test_the_mean_embedding_is_the_mean_of_an_extract_file(tmp_path):
    from voxtrainer.scoring.evaluation import read_score_mean
    embeddings = numpy.arange(12, dtype=numpy.float32).reshape(3, 4)
    numpy.savez(tmp_path / "train.npz", files=numpy.array(["a", "b", "c"]), embeddings=embeddings)
    numpy.testing.assert_allclose(read_score_mean(str(tmp_path / "train.npz")), embeddings.mean(axis=0))


def test_a_mean_of_the_wrong_size_is_one_error_line(audio, tmp_path, capsys):
    folder, _, names = audio
    (tmp_path / "trials.txt").write_text("1 %s %s\n" % (names[0], names[1]))
    numpy.save(tmp_path / "mean.npy", numpy.zeros(192, dtype=numpy.float32))
    status = trainSpeakerNet.main(["--eval", "--model", "ResNet34", "--initial_model",
                                   wespeaker_checkpoint("ResNet34", tmp_path / "r.pt"), "--test_list",
                                   str(tmp_path / "trials.txt"), "--test_path", folder, "--score_mean_from",
                                   str(tmp_path / "mean.npy"), "--save_path", str(tmp_path / "run")])
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, "--score_mean_from", "192", "256")


# -- training from scratch ------------------------------------------------------------------------

@pytest.mark.parametrize("model", [["ECAPA_TDNN", "--channels", "64"], ["ResNet34"]], ids=lambda model: model[0])
def test_one_epoch_trains_a_wespeaker_model_on_the_demo_set(demo_set, tmp_path, model):
    demo = demo_set(n_train_speakers=4, n_test_speakers=2, utts_per_speaker=2, max_duration=1.2)
    assert trainSpeakerNet.main([
        "--model", *model, "--nOut", "32", "--trainfunc", "aamsoftmax", "--nClasses", "4",
        "--train_list", demo.train_list, "--test_list", demo.test_list, "--train_path", demo.train_path,
        "--test_path", demo.test_path, "--save_path", str(tmp_path), "--max_frames", "100", "--batch_size", "4",
        "--max_epoch", "1", "--test_interval", "1", "--nDataLoaderThread", "0", "--device", "cpu"]) == 0
    assert os.path.isfile(tmp_path / "model" / "model000000001.model")
