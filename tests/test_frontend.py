"""The log-mel and linear-spectrogram front ends equal torchaudio's (reference computed with it)."""

import os
import subprocess

import numpy
import torch

from models.frontend import LinearSpectrogramInstanceNorm, LogMelInstanceNorm, MelSpectrogram
from conftest import ORIGINAL, ROOT


def reference():
    return numpy.load(os.path.join(ORIGINAL, "melspec.npz"))


def max_relative_error(actual, expected):
    expected = torch.as_tensor(expected)
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def test_mel_buffers_equal_torchaudio_window_and_filterbank():
    ref = reference()
    fb = MelSpectrogram()
    assert torch.equal(fb.spectrogram.window, torch.from_numpy(ref["window"]))
    assert max_relative_error(fb.mel_scale.fb, ref["mel_fb"]) < 1e-6


def test_mel_spectrogram_equals_torchaudio_to_1e5_relative():
    ref = reference()
    mel = MelSpectrogram()(torch.from_numpy(ref["input"]))
    assert mel.shape == ref["melspec"].shape
    assert max_relative_error(mel, ref["melspec"]) < 1e-5


def test_log_mel_instance_norm_equals_reference_with_channel_axis():
    ref = reference()
    features = LogMelInstanceNorm()(torch.from_numpy(ref["input"]))
    assert features.shape == (2, 1, 40, 202)
    assert max_relative_error(features[:, 0], ref["logmel_instancenorm"]) < 1e-5


def test_linear_spectrogram_front_end_equals_reference():
    ref = reference()
    features = LinearSpectrogramInstanceNorm()(torch.from_numpy(ref["input"]))
    assert features.shape == (2, 1, 257, 199)
    assert max_relative_error(features[:, 0], ref["stft_mag_instancenorm"]) < 1e-5


def test_front_end_stays_float32_under_autocast():
    ref = reference()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = LogMelInstanceNorm()(torch.from_numpy(ref["input"]))
    assert features.dtype == torch.float32
    assert max_relative_error(features[:, 0], ref["logmel_instancenorm"]) < 1e-5


def test_no_torchaudio_import_anywhere():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    files = tracked or [os.path.join(d, f) for d, _, fs in os.walk(ROOT) for f in fs if f.endswith(".py")]
    files = [os.path.relpath(os.path.join(ROOT, f), ROOT) for f in files]
    offenders = [f for f in files if f != os.path.join("tests", "test_frontend.py")
                 and "import torchaudio" in open(os.path.join(ROOT, f)).read()]
    assert offenders == []
