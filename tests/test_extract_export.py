"""Embeddings for new audio (--extract, SpeakerNet.embed) and exported embedding networks (ONNX,
TorchScript) that reproduce the PyTorch embeddings without this repository."""

import os
import subprocess
import sys

import numpy
import onnxruntime
import pytest
import torch

import trainSpeakerNet
from conftest import ORIGINAL
from voxtrainer.reading.audio import read_audio
from voxtrainer.inference.export import DFTSpectrogram, EmbeddingNetwork, ExportLinearSpectrogram, ExportLogMel, export
from models.frontend import LinearSpectrogramInstanceNorm, LogMelInstanceNorm
from SpeakerNet import SpeakerNet

MODELS = ["ResNetSE34", "ResNetSE34L", "VGGVox"]
FILES = ["id10270/9kU0Q45ZHqk/00001.wav", "id10272/LhdyGbjlngV/00001.wav", "id10271/OiA3LdNaQyj/00001.wav"]


def tiny_net(model="ResNetSE34L", trainfunc="angleproto"):
    torch.manual_seed(0)
    return SpeakerNet(model=model, trainfunc=trainfunc, nOut=32).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("checkpoint") / "tiny.model")
    tiny_net().saveParameters(path)
    return path


@pytest.fixture(scope="module")
def audio():
    """Two fixture recordings of different lengths, cut short to keep the test fast."""
    return [read_audio(os.path.join(ORIGINAL, "wav", name))[:samples] for name, samples in zip(FILES, (9000, 14321))]


def relative_error(ours, reference):
    ours, reference = numpy.asarray(ours, dtype=numpy.float64), numpy.asarray(reference, dtype=numpy.float64)
    return numpy.abs(ours - reference).max() / numpy.abs(reference).max()


# -- --extract and embed() -----------------------------------------------------------------------

def extract(original, checkpoint, tmp_path, names, *extra):
    listfile = tmp_path / "files.txt"
    listfile.write_text("".join(name + "\n" for name in names))
    out = tmp_path / "emb.npz"
    status = trainSpeakerNet.main(["--extract", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut",
                                   "32", "--initial_model", checkpoint, "--extract_list", str(listfile),
                                   "--test_path", original.wav, "--extract_out", str(out), "--nDataLoaderThread",
                                   "0", *extra])
    return status, out


def test_extract_writes_the_mean_of_the_normalised_eval_crop_embeddings_per_file(original, checkpoint, tmp_path):
    status, out = extract(original, checkpoint, tmp_path, FILES, "--eval_frames", "40", "--extract_crops")
    assert status == 0
    with numpy.load(out, allow_pickle=False) as saved:
        assert list(saved["files"]) == FILES
        crops, embeddings = saved["crop_embeddings"], saved["embeddings"]
    assert crops.shape == (3, 10, 32) and embeddings.shape == (3, 32)
    numpy.testing.assert_allclose(numpy.linalg.norm(crops, axis=2), 1, rtol=1e-5)
    numpy.testing.assert_allclose(embeddings, crops.mean(axis=1), rtol=1e-6)
    net = tiny_net()
    net.loadParameters(checkpoint)
    path = os.path.join(original.wav, FILES[1])
    numpy.testing.assert_allclose(net.embed(path, eval_frames=40), embeddings[1], rtol=1e-4, atol=1e-6)
    numpy.testing.assert_allclose(net.embed(read_audio(path), eval_frames=40), embeddings[1], rtol=1e-4, atol=1e-6)


def test_eval_frames_0_embeds_each_whole_file_as_one_crop(original, checkpoint, tmp_path):
    status, out = extract(original, checkpoint, tmp_path, FILES[1:], "--eval_frames", "0", "--extract_crops")
    assert status == 0
    with numpy.load(out, allow_pickle=False) as saved:
        assert saved["crop_embeddings"].shape == (2, 1, 32)
        embeddings = saved["embeddings"]
    net = tiny_net()
    net.loadParameters(checkpoint)
    path = os.path.join(original.wav, FILES[2])
    whole = net.embed_crops(torch.from_numpy(read_audio(path))[None])[0]
    numpy.testing.assert_allclose(embeddings[1], whole, rtol=1e-4, atol=1e-6)
    numpy.testing.assert_allclose(net.embed(path), whole, rtol=1e-4, atol=1e-6)


def test_an_extract_list_with_missing_files_names_all_of_them(original, checkpoint, tmp_path, capsys):
    status, out = extract(original, checkpoint, tmp_path, [FILES[0], "gone/a.wav", FILES[1], "gone/b.wav"])
    assert status == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "2 listed audio file(s) not found" in err and "gone/a.wav (line 2)" in err and "gone/b.wav (line 4)" in err


# -- export -----------------------------------------------------------------------------------

@pytest.mark.parametrize("frontend, replacement", [(LogMelInstanceNorm, ExportLogMel),
                                                   (LinearSpectrogramInstanceNorm, ExportLinearSpectrogram)])
def test_the_conv1d_dft_front_end_equals_torch_stft(audio, frontend, replacement):
    original = frontend()
    waveform = torch.from_numpy(audio[1])[None]
    numpy.testing.assert_allclose(replacement(original)(waveform), original(waveform), rtol=0, atol=1e-4)


def test_the_dft_spectrogram_is_the_stft_power():
    waveform = torch.randn(2, 4000) * 1000
    window = torch.hann_window(400)
    expected = torch.stft(waveform, 512, 160, 400, window, center=True, pad_mode="reflect",
                          return_complex=True).abs() ** 2
    ours = DFTSpectrogram(window, 512, 160, center=True, power=2)(waveform)
    assert relative_error(ours, expected) < 1e-5


def run_onnx(path, waveform):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["waveform"]
    return session.run(["embedding"], {"waveform": waveform[None].astype(numpy.float32)})[0][0]


def run_torchscript(path, waveform):
    with torch.no_grad():
        return torch.jit.load(str(path))(torch.from_numpy(waveform)[None])[0].numpy()


@pytest.mark.parametrize("model, length", zip(MODELS, (0, 1, 1)))
def test_exports_reproduce_the_pytorch_embeddings_at_any_length(model, length, audio, tmp_path):
    """Traced on 1.015 s of noise, run on a recording of another length."""
    net = tiny_net(model)
    paths = {"onnx": tmp_path / "net.onnx", "torchscript": tmp_path / "net.pt"}
    for fmt, path in paths.items():
        export(net, fmt, str(path))
    waveform = audio[length]
    reference = net.embed_crops(torch.from_numpy(waveform)[None])[0].numpy()
    assert relative_error(run_onnx(paths["onnx"], waveform), reference) < 1e-4
    assert relative_error(run_torchscript(paths["torchscript"], waveform), reference) < 1e-4


@pytest.mark.parametrize("trainfunc, normalised", [("angleproto", True), ("proto", False)])
def test_the_exported_network_ends_as_the_loss_scores_embeddings(audio, trainfunc, normalised):
    net = tiny_net(trainfunc=trainfunc)
    waveform = torch.from_numpy(audio[0])[None]
    with torch.no_grad():
        ours, raw = EmbeddingNetwork(net)(waveform), net.__S__(waveform)
    assert EmbeddingNetwork(net).normalize == normalised
    expected = torch.nn.functional.normalize(raw, dim=1) if normalised else raw
    assert relative_error(ours, expected) < 1e-4


def test_the_torchscript_file_runs_without_this_repository(checkpoint, audio, tmp_path):
    out = tmp_path / "net.pt"
    assert trainSpeakerNet.main(["--export", "torchscript", "--model", "ResNetSE34L", "--trainfunc", "angleproto",
                                 "--nOut", "32", "--initial_model", checkpoint, "--export_out", str(out)]) == 0
    numpy.save(tmp_path / "audio.npy", audio[0])
    # -I: no PYTHONPATH, no current folder on sys.path; run from elsewhere.
    code = ("import numpy, torch; m = torch.jit.load('net.pt'); "
            "numpy.save('emb.npy', m(torch.from_numpy(numpy.load('audio.npy'))[None])[0].detach().numpy())")
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    net = tiny_net()
    net.loadParameters(checkpoint)
    reference = net.embed_crops(torch.from_numpy(audio[0])[None])[0].numpy()
    assert relative_error(numpy.load(tmp_path / "emb.npy"), reference) < 1e-4


def test_exporting_a_checkpoint_of_another_model_is_one_clear_error(checkpoint, tmp_path, capsys):
    status = trainSpeakerNet.main(["--export", "onnx", "--model", "VGGVox", "--trainfunc", "angleproto", "--nOut",
                                   "32", "--initial_model", checkpoint, "--export_out", str(tmp_path / "x.onnx")])
    assert status == 2 and not (tmp_path / "x.onnx").exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: %s: does not fit this --model" % checkpoint) and "\n" not in err
