"""--augment: MUSAN noise, babble and music at their SNRs, unit-energy reverberation, determinism
per seed in the loader workers, clear errors, and its cost to the training loop.

The MUSAN and RIR folders are made here. Every "noise" file is a pure tone on an exact DFT bin of
the crop, so the FFT of an augmented crop shows which files were mixed in and at what level."""

import collections
import os
import random

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from voxtrainer.reading.augment import CHOICES, Augmenter, energy_db
from voxtrainer.reading.audio import crop_samples
from voxtrainer.reading.datasets import make_train_loader
from voxtrainer.errors import InputError
from voxtrainer.reading.lists import TrainList

RATE = 16000
MAX_FRAMES = 100
N = crop_samples(MAX_FRAMES)
CLEAN_BIN, NOISE_BIN, MUSIC_BIN = 50, 90, 130
SPEECH_BINS = [170 + 20 * index for index in range(8)]


def tone(frequency_bin, amplitude=1000.0, samples=3 * RATE // 2):
    """A sinusoid with exactly `frequency_bin` cycles per crop, wherever the crop starts."""
    return amplitude * numpy.sin(2 * numpy.pi * frequency_bin * numpy.arange(samples) / N)


def write(path, audio, rate=RATE, subtype="PCM_16"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if subtype == "PCM_16":
        audio = numpy.round(audio).astype(numpy.int16)
    soundfile.write(path, audio, rate, subtype=subtype)
    return path


def make_musan(root, speech_bins=SPEECH_BINS):
    write(os.path.join(root, "noise", "free-sound", "noise-free-sound-0000", "00000.wav"), tone(NOISE_BIN))
    write(os.path.join(root, "music", "fma", "music-fma-0000", "00000.wav"), tone(MUSIC_BIN))
    for index, frequency_bin in enumerate(speech_bins):
        write(os.path.join(root, "speech", "librivox", "speech-librivox-%04d" % index, "00000.wav"),
              tone(frequency_bin))
    return root


def make_rirs(root, rir=(0.3, 0.0, 0.0, 0.4)):
    write(os.path.join(root, "smallroom", "Room001", "Room001-00001.wav"), numpy.array(rir), subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    return make_musan(str(root / "musan_split")), make_rirs(str(root / "simulated_rirs"))


@pytest.fixture(scope="module")
def augmenter(corpora):
    return Augmenter(*corpora)


def clean_crop():
    return tone(CLEAN_BIN, amplitude=3000.0, samples=N).astype(numpy.float32)


def bin_power(audio, frequency_bin):
    """Mean power of the sinusoid on one DFT bin of the crop."""
    return 2 * (numpy.abs(numpy.fft.rfft(audio.astype(numpy.float64))[frequency_bin]) / len(audio)) ** 2


def snr_db(clean, audio, frequency_bin):
    return 10 * numpy.log10(bin_power(clean, CLEAN_BIN) / bin_power(audio, frequency_bin))


# -- what one crop gets -------------------------------------------------------------------------

def test_each_crop_is_clean_or_gets_one_of_reverb_music_babble_noise_equally_often(augmenter, monkeypatch):
    chosen = collections.Counter()
    monkeypatch.setattr(augmenter, "reverberate", lambda crop, rng: chosen.update(["reverb"]) or crop)
    monkeypatch.setattr(augmenter, "add_noise", lambda crop, kind, rng: chosen.update([kind]) or crop)
    rng = random.Random(0)
    for _ in range(1000):
        augmented_before = sum(chosen.values())
        augmenter(clean_crop(), rng)
        if sum(chosen.values()) == augmented_before:
            chosen["clean"] += 1
    assert set(chosen) == set(CHOICES)
    assert all(150 <= count <= 250 for count in chosen.values()), chosen


@pytest.mark.parametrize("kind, frequency_bin, low, high", [("noise", NOISE_BIN, 0, 15), ("music", MUSIC_BIN, 5, 15)])
def test_noise_and_music_are_one_file_at_an_snr_drawn_from_their_range(augmenter, kind, frequency_bin, low, high):
    clean = clean_crop()
    snrs = []
    for seed in range(20):
        augmented = augmenter.add_noise(clean, kind, random.Random(seed))
        assert augmented.shape == clean.shape and augmented.dtype == numpy.float32
        snrs.append(snr_db(clean, augmented, frequency_bin))
    assert all(low - 0.01 <= snr <= high + 0.01 for snr in snrs), snrs
    assert max(snrs) - min(snrs) > (high - low) / 2  # drawn, not fixed


def test_babble_mixes_3_to_7_distinct_speech_files_each_at_13_to_20_db(augmenter):
    clean = clean_crop()
    talkers = set()
    for seed in range(30):
        augmented = augmenter.add_noise(clean, "speech", random.Random(seed))
        present = [b for b in SPEECH_BINS if bin_power(augmented, b) > 1e-3 * bin_power(clean, CLEAN_BIN)]
        talkers.add(len(present))
        assert all(13 - 0.01 <= snr_db(clean, augmented, b) <= 20 + 0.01 for b in present)
        assert numpy.isclose(bin_power(augmented, CLEAN_BIN), bin_power(clean, CLEAN_BIN), rtol=1e-4)
    assert talkers <= set(range(3, 8)) and len(talkers) >= 3


def test_the_snr_is_relative_to_the_level_of_the_crop(augmenter):
    clean = clean_crop()
    quiet = augmenter.add_noise(clean / 100, "noise", random.Random(1))
    loud = augmenter.add_noise(clean, "noise", random.Random(1))
    assert snr_db(clean / 100, quiet, NOISE_BIN) == pytest.approx(snr_db(clean, loud, NOISE_BIN), abs=0.01)


def test_a_noise_file_shorter_than_the_crop_is_repeated_to_its_length(tmp_path):
    short = numpy.arange(1, 1001) * 7.0
    path = write(str(tmp_path / "short.wav"), short)
    numpy.testing.assert_array_equal(Augmenter.noise_crop(path, 2500, random.Random(0)),
                                     numpy.concatenate([short, short, short[:500]]))


def test_reverberation_convolves_a_unit_energy_rir_and_keeps_the_crop_length(augmenter):
    clean = numpy.random.default_rng(0).normal(0, 1000, N).astype(numpy.float32)
    reverberant = augmenter.reverberate(clean, random.Random(0))
    # The RIR (0.3, 0, 0, 0.4) has energy 0.25: normalised it is (0.6, 0, 0, 0.8).
    expected = 0.6 * clean + 0.8 * numpy.concatenate([numpy.zeros(3), clean[:-3]])
    assert reverberant.shape == clean.shape and reverberant.dtype == numpy.float32
    numpy.testing.assert_allclose(reverberant, expected, rtol=1e-5, atol=1e-2)


def test_energy_is_voxceleb_trainers_level_in_db():
    assert energy_db(numpy.full(10, 100.0)) == pytest.approx(10 * numpy.log10(1e4 + 1e-4))
    assert numpy.isfinite(energy_db(numpy.zeros(10)))


# -- in the loader ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    rng = numpy.random.default_rng(0)
    lines = []
    for speaker in range(4):
        for utterance in range(2):
            name = "id%05d/clip/%05d.wav" % (speaker, utterance)
            write(str(root / name), rng.normal(0, 2000, RATE))
            lines.append("id%05d %s\n" % (speaker, name))
    (root / "train_list.txt").write_text("".join(lines))
    return TrainList(str(root / "train_list.txt"), str(root))


def all_batches(train_list, augmenter, workers, seed):
    loader, sampler = make_train_loader(train_list, MAX_FRAMES, 2, 100, 2, workers, seed, augment=augmenter)
    sampler.set_epoch(1)
    return [crops for crops, _ in loader]


def test_augmentation_runs_in_the_workers_and_depends_only_on_the_seed(train_list, augmenter):
    in_process = all_batches(train_list, augmenter, 0, seed=3)
    in_workers = all_batches(train_list, augmenter, 2, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(in_process, in_workers)) and len(in_process) == len(in_workers)
    other_seed = all_batches(train_list, augmenter, 0, seed=4)
    assert not all(torch.equal(a, b) for a, b in zip(in_process, other_seed))


def test_augmentation_does_not_move_the_crops(train_list, corpora):
    """With only the clean choice left, augmented batches are the plain batches."""
    plain = all_batches(train_list, None, 0, seed=3)

    class CleanOnly(Augmenter):
        def __call__(self, crop, rng):
            rng.choice(CHOICES)
            return crop

    clean = all_batches(train_list, CleanOnly(*corpora), 0, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(plain, clean))


# -- through trainSpeakerNet ------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(demo_set):
    return demo_set()


def train_flags(demo, save_path, *extra):
    return ["--model", "ResNetSE34L", "--trainfunc", "softmax", "--nClasses", "4", "--train_list", demo.train_list,
            "--test_list", demo.test_list, "--train_path", demo.train_path, "--test_path", demo.test_path,
            "--save_path", str(save_path), "--nOut", "32", "--max_frames", "50", "--batch_size", "2",
            "--max_epoch", "1", "--test_interval", "1", *extra]


def test_training_with_augment_runs_on_the_demo_set(demo, corpora, tmp_path):
    status = trainSpeakerNet.main(train_flags(demo, tmp_path, "--augment", "--musan_path", corpora[0],
                                              "--rir_path", corpora[1], "--nDataLoaderThread", "2"))
    assert status == 0
    assert os.path.isfile(tmp_path / "model" / "model000000001.model")


def one_line_error(capsys, status, *needles):
    assert status == 2
    err = capsys.readouterr().err.split("\r")[-1].strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err


def test_augment_without_the_corpora_is_one_clear_error(demo, tmp_path, capsys):
    status = trainSpeakerNet.main(train_flags(demo, tmp_path, "--augment", "--musan_path", str(tmp_path / "none"),
                                              "--nDataLoaderThread", "0"))
    one_line_error(capsys, status, "--musan_path", "folder not found", "dataprep.py --augment")


# -- bad corpora -------------------------------------------------------------------------------

def test_missing_or_empty_folders_are_named(corpora, tmp_path):
    musan, rirs = corpora
    os.makedirs(tmp_path / "empty")
    cases = [((str(tmp_path / "none"), rirs), "--musan_path %s: folder not found" % (tmp_path / "none")),
             ((str(tmp_path / "empty"), rirs), "no .wav files in noise/, speech/, music/"),
             ((musan, str(tmp_path / "none")), "--rir_path %s: folder not found" % (tmp_path / "none")),
             ((musan, str(tmp_path / "empty")), "--rir_path %s: no .wav" % (tmp_path / "empty"))]
    for paths, message in cases:
        with pytest.raises(InputError) as error:
            Augmenter(*paths)
        assert message in error.value.line


def test_a_musan_folder_without_one_kind_is_named(tmp_path):
    write(str(tmp_path / "musan" / "noise" / "a" / "b" / "00000.wav"), tone(NOISE_BIN))
    with pytest.raises(InputError, match="no .wav files in speech/, music/"):
        Augmenter(str(tmp_path / "musan"), make_rirs(str(tmp_path / "rirs")))


def test_a_noise_file_with_another_sample_rate_is_one_clear_error(corpora, tmp_path):
    musan = make_musan(str(tmp_path / "musan"))
    bad = write(os.path.join(musan, "noise", "free-sound", "noise-free-sound-0000", "00000.wav"),
                tone(NOISE_BIN)[:12000], rate=8000)
    with pytest.raises(InputError) as error:
        Augmenter(musan, corpora[1])
    assert error.value.line.startswith(bad) and "sample rate is 8000 Hz" in error.value.line
    # A wrong file found only while training is reported the same way.
    augmenter = Augmenter(make_musan(str(tmp_path / "good")), corpora[1])
    augmenter.noise_files["noise"] = [bad]
    with pytest.raises(InputError, match="sample rate is 8000 Hz"):
        augmenter.add_noise(clean_crop(), "noise", random.Random(0))
