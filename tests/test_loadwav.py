"""loadWAV gives the original's crops; training crops read only what they need, identically."""

import os
import random

import numpy
import pytest
import soundfile
import torch

from voxtrainer.reading.audio import load_random_crop, loadWAV
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


# -- float and 24-bit files -------------------------------------------------------------------

def write_copy(path, samples, subtype):
    """`samples` (int16 values) as a file of `subtype`: float files hold value / 32768, as sox,
    ffmpeg (-c:a pcm_f32le) and soundfile (from normalised float data) write them."""
    data = numpy.asarray(samples, dtype=numpy.int16)
    if subtype in ("FLOAT", "DOUBLE"):
        data = data.astype(numpy.float64) / 32768
    soundfile.write(str(path), data, 16000, subtype=subtype)
    assert soundfile.info(str(path)).subtype == subtype
    return str(path)


def speech_like(num_samples, seed=0):
    """int16 values over the whole range, extremes included."""
    values = numpy.random.default_rng(seed).integers(-32768, 32768, num_samples)
    values[:4] = [-32768, 32767, 0, -1]
    return values


@pytest.mark.parametrize("num_samples", [40000, 9000])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_copies_of_a_16_bit_file_give_bit_identical_eval_crops(tmp_path, num_samples, subtype):
    samples = speech_like(num_samples)
    original = write_copy(tmp_path / "a16.wav", samples, "PCM_16")
    copy = write_copy(tmp_path / "a.wav", samples, subtype)
    for eval_frames in (0, 50, 100, 300):
        expected = loadWAV(original, eval_frames, evalmode=True, num_eval=10)
        crops = loadWAV(copy, eval_frames, evalmode=True, num_eval=10)
        assert crops.dtype == torch.float32 and torch.equal(crops, expected)
    assert torch.equal(loadWAV(copy, 0)[0], torch.from_numpy(samples.astype(numpy.float32)))


@pytest.mark.parametrize("num_samples", [40000, 9000])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_copies_of_a_16_bit_file_give_identical_training_crops(tmp_path, num_samples, subtype):
    samples = speech_like(num_samples, seed=1)
    original = write_copy(tmp_path / "a16.wav", samples, "PCM_16")
    copy = write_copy(tmp_path / "a.wav", samples, subtype)
    for seed in range(5):
        crop = load_random_crop(copy, 100, random.Random(seed))
        assert crop.dtype == numpy.float32
        numpy.testing.assert_array_equal(crop, load_random_crop(original, 100, random.Random(seed)))


def test_float_samples_are_scaled_by_32768_not_rounded_to_integers(tmp_path):
    path = str(tmp_path / "f.wav")
    soundfile.write(path, numpy.array([0.25, -0.5, 0.0001, 1.0] * 5000, dtype=numpy.float32), 16000, subtype="FLOAT")
    numpy.testing.assert_array_equal(loadWAV(path, 0)[0, :4].numpy(), [8192, -16384, numpy.float32(0.0001) * 32768,
                                                                        32768])


def test_a_24_bit_file_gives_its_int16_values(tmp_path):
    samples = speech_like(30000, seed=2)
    path = write_copy(tmp_path / "a24.wav", samples, "PCM_24")  # the int16 values, shifted up 8 bits
    assert torch.equal(loadWAV(path, 0)[0], torch.from_numpy(samples.astype(numpy.float32)))
    random.seed(3)
    assert torch.equal(loadWAV(path, 100, evalmode=False)[0], torch.from_numpy(load_random_crop(path, 100,
                                                                                               random.Random(3))))


def test_a_24_bit_file_keeps_the_int16_conversion_of_its_low_bits(tmp_path):
    # libsndfile's int16 conversion drops the low 8 bits (floor), as before float support.
    path = str(tmp_path / "a24.wav")
    values = numpy.array([1, 255, 256, -1, -257, 8388607, -8388608] * 3000, dtype=numpy.int32)
    soundfile.write(path, values * 256, 16000, subtype="PCM_24")
    assert loadWAV(path, 0)[0, :7].tolist() == [0, 0, 1, -1, -2, 32767, -32768]


@pytest.mark.parametrize("bad", [numpy.nan, numpy.inf])
def test_non_finite_float_samples_are_an_input_error_naming_the_file(tmp_path, bad):
    path = str(tmp_path / "nan.wav")
    audio = numpy.zeros(20000, dtype=numpy.float32)
    audio[::100] = bad  # in every crop
    soundfile.write(path, audio, 16000, subtype="FLOAT")
    for load in (lambda: loadWAV(path, 100), lambda: load_random_crop(path, 0, random.Random(0))):
        with pytest.raises(InputError, match="non-finite samples") as error:
            load()
        assert path in error.value.line


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_musan_noise_reads_as_its_16_bit_original(tmp_path, subtype):
    from voxtrainer.reading.augment import Augmenter
    samples = speech_like(9000, seed=4)
    original = write_copy(tmp_path / "n16.wav", samples, "PCM_16")
    copy = write_copy(tmp_path / "n.wav", samples, subtype)
    for length in (4000, 20000):  # a random piece; the file repeated
        noise = Augmenter.noise_crop(copy, length, random.Random(5))
        assert noise.dtype == numpy.float32
        numpy.testing.assert_array_equal(noise, Augmenter.noise_crop(original, length, random.Random(5)))
