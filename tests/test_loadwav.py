"""loadWAV gives the original's crops; training crops read only what they need, identically."""

import os
import random

import numpy
import pytest
import soundfile
import torch

from voxtrainer.audio import load_random_crop, loadWAV
from voxtrainer.errors import InputError


def write_wav(path, samples, samplerate=16000, channels=1):
    data = numpy.asarray(samples, dtype=numpy.int16)
    if channels > 1:
        data = numpy.stack([data] * channels, axis=1)
    soundfile.write(str(path), data, samplerate, subtype="PCM_16")
    return str(path)


def test_eval_crops_equal_the_originals(original):
    reference = numpy.load(original.file("embedding.npz"))
    crops = loadWAV(os.path.join(original.wav, str(reference["input_file"])), 300, evalmode=True, num_eval=10)
    assert crops.dtype == torch.float32
    assert torch.equal(crops, torch.from_numpy(reference["crops_int16"].astype(numpy.float32)))


def test_samples_are_int16_values_not_scaled(tmp_path):
    path = write_wav(tmp_path / "a.wav", [32767, -32768, 5] * 20000)
    crops = loadWAV(path, 100, evalmode=True, num_eval=2)
    assert crops.max().item() == 32767 and crops.min().item() == -32768


@pytest.mark.parametrize("num_samples", [48240, 48241, 19200, 19201, 100])
def test_short_files_are_zero_padded_symmetrically_by_floor_half_the_shortage(tmp_path, num_samples):
    max_audio = 300 * 160 + 240
    audio = numpy.arange(1, num_samples + 1) % 30000 + 1
    crops = loadWAV(write_wav(tmp_path / "a.wav", audio), 300, evalmode=True, num_eval=10)
    assert crops.shape == (10, max_audio)
    pad = (max_audio - num_samples + 1) // 2
    padded = numpy.pad(audio, (pad, pad)).astype(numpy.float32)
    starts = [int(s) for s in numpy.linspace(0, len(padded) - max_audio, 10)]
    assert torch.equal(crops, torch.from_numpy(numpy.stack([padded[s:s + max_audio] for s in starts])))


def test_max_frames_zero_in_eval_mode_is_the_whole_file_as_one_crop(tmp_path):
    audio = numpy.arange(30001) % 1000
    crops = loadWAV(write_wav(tmp_path / "a.wav", audio), 0, evalmode=True, num_eval=10)
    assert torch.equal(crops, torch.from_numpy(audio.astype(numpy.float32))[None])


@pytest.mark.parametrize("num_samples", [40000, 32240, 20001, 500])
def test_training_crop_read_by_seeking_equals_the_original_random_crop(tmp_path, num_samples):
    path = write_wav(tmp_path / "a.wav", numpy.arange(num_samples) % 20000 + 1)
    for seed in range(5):
        random.seed(seed)
        expected = loadWAV(path, 200, evalmode=False)
        crop = load_random_crop(path, 200, random.Random(seed))
        assert expected.shape == (1, 200 * 160 + 240)
        assert torch.equal(expected[0], torch.from_numpy(crop))


@pytest.mark.parametrize("make, message", [
    (lambda p: write_wav(p, numpy.zeros(16000), samplerate=8000), "sample rate is 8000 Hz"),
    (lambda p: write_wav(p, numpy.zeros(16000), channels=2), "2 channels"),
    (lambda p: write_wav(p, []), "no audio samples"),
    (lambda p: open(p, "wb").write(b"not a wav file") and str(p), "cannot read audio"),
])
def test_bad_audio_is_an_input_error_naming_the_file(tmp_path, make, message):
    path = str(tmp_path / "bad.wav")
    make(path)
    for load in (lambda: loadWAV(path, 100), lambda: load_random_crop(path, 100, random.Random(0))):
        with pytest.raises(InputError, match=message) as error:
            load()
        assert path in error.value.line
