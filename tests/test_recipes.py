"""Today's recipe options for the training data (WeSpeaker's VoxCeleb recipe), all off by default:
speed perturbation with a class per speed, dither, the duration filter and repeat padding."""

import os
import random

import numpy
import pytest
import soundfile
import torch
from scipy import signal

import trainSpeakerNet
from voxtrainer.cli.flags import parse_args
from voxtrainer.cli.build import head_classes
from conftest import assert_one_error_line
from voxtrainer.reading import perturb
from voxtrainer.reading.audio import INT16_SCALE, crop_samples, load_random_crop
from voxtrainer.reading.datasets import Group, TrainDataset, make_train_loader
from voxtrainer.errors import InputError
from voxtrainer.reading.lists import TrainList, leave_out_by_duration

MAX_FRAMES = 50
CROP = crop_samples(MAX_FRAMES)


def write_wav(path, samples, subtype="PCM_16"):
    soundfile.write(str(path), numpy.asarray(samples, dtype=numpy.int16), 16000, subtype=subtype)
    return str(path)


def tone(seconds, hertz=440.0, amplitude=8000):
    t = numpy.arange(int(16000 * seconds)) / 16000
    return amplitude * numpy.sin(2 * numpy.pi * hertz * t)


def peak_hertz(crop):
    return numpy.argmax(numpy.abs(numpy.fft.rfft(crop))) * 16000 / crop.shape[0]


@pytest.fixture
def train_list(tmp_path):
    """3 speakers x 4 utterances of noise, 0.25-1.5 s: some shorter than one crop of MAX_FRAMES."""
    rng = numpy.random.default_rng(0)
    lines = []
    for speaker in range(3):
        for utterance in range(4):
            name = "s%d_%d.wav" % (speaker, utterance)
            seconds = [0.25, 0.5, 1.0, 1.5][utterance]
            write_wav(tmp_path / name, rng.normal(0, 2000, int(16000 * seconds)))
            lines.append("spk%d %s\n" % (speaker, name))
    (tmp_path / "train_list.txt").write_text("".join(lines))
    return TrainList(str(tmp_path / "train_list.txt"), str(tmp_path))


def groups_of(train_list, seeds, size=2):
    """Groups of `size` utterances of one speaker, one per seed, cycling through the speakers."""
    groups = []
    for seed in seeds:
        label = seed % train_list.num_speakers
        utterances = [i for i, l in enumerate(train_list.labels) if l == label][-size:]
        groups.append(Group(tuple(utterances), label, seed))
    return groups


# -- defaults ---------------------------------------------------------------------------------

def test_every_recipe_flag_is_off_by_default():
    args = parse_args([])
    assert (args.speed_perturb, args.dither, args.min_train_seconds, args.max_train_seconds,
            args.short_crop_padding) == (False, 0.0, None, None, None)


def test_a_config_file_sets_the_recipe_flags(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("speed_perturb: true\ndither: 1.0\nmin_train_seconds: 1.0\nmax_train_seconds: 20\n"
                      "short_crop_padding: repeat\n")
    args = parse_args(["--config", str(config)])
    assert (args.speed_perturb, args.dither, args.min_train_seconds, args.max_train_seconds,
            args.short_crop_padding) == (True, 1.0, 1.0, 20.0, "repeat")


@pytest.mark.parametrize("protocol", ["2020", "2021"])
def test_default_crops_are_the_seeds_crops_bit_for_bit(train_list, protocol):
    """Without the options, a group's crops are load_random_crop's from its seed, as before them."""
    dataset = TrainDataset(train_list, MAX_FRAMES, protocol=protocol)
    for group in groups_of(train_list, range(6)):
        crops, label = dataset[group]
        rng = random.Random(group.crop_seed)
        expected = numpy.stack([load_random_crop(train_list.files[i], MAX_FRAMES, rng, protocol)
                                for i in group.utterances])
        assert label == group.label
        assert numpy.array_equal(crops.float().numpy().view(numpy.int32), expected.view(numpy.int32))


# -- speed perturbation -----------------------------------------------------------------------

def test_speeds_and_classes_are_wespeakers():
    """Speeds [1.0, 0.9, 1.1]; speaker s at speed index i is class s + i * num_classes; the head has
    3 x num_classes classes."""
    assert perturb.SPEEDS == (1.0, 0.9, 1.1)
    assert [perturb.speed_class(7, i, 100) for i in range(3)] == [7, 107, 207]
    assert perturb.speed_perturbed_classes(100) == 300
    assert head_classes(100, speed_perturb=True) == 300
    assert head_classes(100, speed_perturb=False) == 100


@pytest.mark.parametrize("seconds", [5.0, 2.0, 0.3])  # longer than the input stretch, about a crop, shorter
@pytest.mark.parametrize("protocol", ["2020", "2021"])
def test_every_speed_gives_exactly_one_crop(tmp_path, seconds, protocol):
    path = write_wav(tmp_path / "a.wav", tone(seconds))
    for index in range(3):
        crop = perturb.load_speed_crop(path, 200, index, random.Random(index), protocol)
        assert crop.shape == (crop_samples(200),) and crop.dtype == numpy.float32


def test_speed_scales_pitch_and_tempo_as_sox_speed(tmp_path):
    """A 440 Hz tone played at 0.9 is at 396 Hz, at 1.1 at 484 Hz (within an FFT bin)."""
    path = write_wav(tmp_path / "a.wav", tone(5.0))
    for index, speed in enumerate(perturb.SPEEDS):
        crop = perturb.load_speed_crop(path, 200, index, random.Random(0))
        assert peak_hertz(crop) == pytest.approx(440 * speed, abs=16000 / crop.shape[0])


def test_speed_one_is_the_plain_crop_of_the_same_draw(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone(3.0))
    assert numpy.array_equal(perturb.load_speed_crop(path, 200, 0, random.Random(5)),
                             load_random_crop(path, 200, random.Random(5)))


class FixedDraw:
    """A stand-in for the crop rng whose draw puts the crop's stretch at `start`."""

    def __init__(self, start, span):
        self.value = (start + 0.5) / span

    def random(self):
        return self.value


@pytest.mark.parametrize("index", [1, 2])
def test_a_crop_equals_the_same_stretch_of_the_whole_file_resampled(tmp_path, index):
    """Reading ceil(crop * speed) samples plus a margin beyond the filter's reach and resampling them
    gives what resampling the whole file (WeSpeaker: sox on the utterance) and cutting gives."""
    audio = numpy.random.default_rng(1).normal(0, 3000, 16000 * 4).astype(numpy.int16)
    path = write_wav(tmp_path / "a.wav", audio)
    up, down = perturb.RESAMPLING[perturb.SPEEDS[index]]
    margin = perturb.MARGIN_STEPS * down
    stretch = -(-CROP * down // up) + 2 * margin
    start = 50 * down  # a multiple of `down`: the output then starts on a whole-file output sample
    crop = perturb.load_speed_crop(path, MAX_FRAMES, index, FixedDraw(start, audio.shape[0] - stretch))
    whole = signal.resample_poly(audio.astype(numpy.float64), up, down)
    first = (start + margin) * up // down
    numpy.testing.assert_allclose(crop, whole[first:first + CROP], rtol=0, atol=0.05)


def test_a_group_has_one_speed_and_its_class(train_list):
    n = train_list.num_speakers
    plain = TrainDataset(train_list, MAX_FRAMES)
    perturbed = TrainDataset(train_list, MAX_FRAMES, speed_perturb=True, num_classes=n)
    speeds = []
    for group in groups_of(train_list, range(60)):
        crops, label = perturbed[group]
        index = (label - group.label) // n
        assert label == perturb.speed_class(group.label, index, n) and crops.shape == (2, CROP)
        speeds.append(index)
        rng = random.Random(group.crop_seed)
        assert perturb.draw_speed(rng) == index  # the first draw of the group's seed
        expected = [perturb.load_speed_crop(train_list.files[i], MAX_FRAMES, index, rng) for i in group.utterances]
        assert numpy.array_equal(crops.numpy(), numpy.stack(expected))
        if index == 0:
            assert crops.shape == plain[group][0].shape
    assert set(speeds) == {0, 1, 2}


def test_speed_perturbation_needs_the_class_block_size(train_list):
    with pytest.raises(ValueError, match="num_classes"):
        TrainDataset(train_list, MAX_FRAMES, speed_perturb=True)


def all_batches(train_list, workers, seed, **options):
    loader, sampler = make_train_loader(train_list, MAX_FRAMES, 2, 100, 3, workers, seed, pin_memory=False, **options)
    sampler.set_epoch(1)
    return [(crops, labels) for crops, labels in loader]


def test_speed_perturbation_and_dither_run_in_the_workers_and_depend_only_on_the_seed(train_list):
    options = dict(speed_perturb=True, num_classes=train_list.num_speakers, dither=1.0)
    in_process = all_batches(train_list, 0, seed=3, **options)
    in_workers = all_batches(train_list, 1, seed=3, **options)
    assert len(in_process) == len(in_workers) > 0
    for (crops_a, labels_a), (crops_b, labels_b) in zip(in_process, in_workers):
        assert torch.equal(crops_a, crops_b) and torch.equal(labels_a, labels_b)
    other = all_batches(train_list, 0, seed=4, **options)
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(in_process, other))


# -- dither -----------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol, unit", [("2020", 1.0), ("2021", 1 / 32768)])
def test_dither_adds_gaussian_noise_of_its_amplitude_in_int16_units(train_list, protocol, unit):
    plain = TrainDataset(train_list, MAX_FRAMES, protocol=protocol)
    dithered = TrainDataset(train_list, MAX_FRAMES, protocol=protocol, dither=2.0)
    group = groups_of(train_list, [1])[0]
    noise = (dithered[group][0] - plain[group][0].float()).numpy() / unit
    assert noise.std() == pytest.approx(2.0, rel=0.03) and abs(noise.mean()) < 0.05
    assert torch.equal(dithered[group][0], dithered[group][0])  # deterministic per group seed


def test_dither_is_drawn_after_the_crops_and_does_not_move_them(train_list):
    """Dither is the last draw of a group: the crops under it are the plain ones."""
    group = groups_of(train_list, [2])[0]
    crops = TrainDataset(train_list, MAX_FRAMES)[group][0].float().numpy()
    rng = random.Random(group.crop_seed)
    for index in group.utterances:
        load_random_crop(train_list.files[index], MAX_FRAMES, rng)
    expected = perturb.dither(crops, 1.0, rng)
    assert numpy.array_equal(TrainDataset(train_list, MAX_FRAMES, dither=1.0)[group][0].numpy(), expected)


# -- duration filter --------------------------------------------------------------------------

def test_the_duration_filter_leaves_out_utterances_outside_the_range_and_says_how_many(train_list):
    kept, note = leave_out_by_duration(train_list, 0.4, 1.2, progress=False)
    assert note == "duration filter [0.4, 1.2] s: 6 utterances of 3 speakers left; left out 6 of 12 (3 shorter, 3 longer)"
    assert [path.rsplit("/", 1)[1] for path in kept.files] == ["s%d_%d.wav" % (s, u) for s in range(3) for u in (1, 2)]
    assert kept.labels == [0, 0, 1, 1, 2, 2] and kept.num_speakers == 3
    assert len(train_list.files) == 12  # the list it was given is unchanged


def test_either_bound_alone_and_bounds_are_inclusive(train_list):
    assert leave_out_by_duration(train_list, min_seconds=1.0, progress=False)[1] == \
        "duration filter [1, inf] s: 6 utterances of 3 speakers left; left out 6 of 12 (6 shorter, 0 longer)"
    assert leave_out_by_duration(train_list, max_seconds=0.25, progress=False)[1] == \
        "duration filter [0, 0.25] s: 3 utterances of 3 speakers left; left out 9 of 12 (0 shorter, 9 longer)"


def test_the_duration_filter_names_speakers_it_leaves_without_an_utterance(train_list, tmp_path):
    listfile = tmp_path / "with_a_short_speaker.txt"
    listfile.write_text(open(train_list.listfile).read() + "spk9 s0_0.wav\nspk8 s1_0.wav\n")
    kept, note = leave_out_by_duration(TrainList(str(listfile), str(tmp_path)), min_seconds=0.4, progress=False)
    assert note == ("duration filter [0.4, inf] s: 9 utterances of 3 speakers left; left out 5 of 14 (5 shorter, "
                    "0 longer) and every utterance of 2 speaker(s), e.g. spk8")
    assert kept.num_speakers == 5  # their classes stay: a speaker's class does not depend on the filter


def test_the_filtered_list_names_only_the_files_it_keeps(train_list):
    """Its listed names (what the leakage check compares) follow its files: a left-out file is not
    trained on."""
    kept, _ = leave_out_by_duration(train_list, 0.4, 1.2, progress=False)
    assert [os.path.join(kept.train_path, name) for name in kept.names] == kept.files


def test_a_speakers_class_does_not_depend_on_the_filter(train_list):
    kept, _ = leave_out_by_duration(train_list, min_seconds=0.3, progress=False)
    assert kept.speaker_index == train_list.speaker_index
    assert kept.labels == [label for label, path in zip(train_list.labels, train_list.files) if "_0" not in path]


def test_nothing_left_or_crossed_bounds_is_an_input_error(train_list):
    with pytest.raises(InputError, match="all 12 utterances are outside \\[2, inf\\] s"):
        leave_out_by_duration(train_list, min_seconds=2.0, progress=False)
    with pytest.raises(InputError, match="--min_train_seconds 2 is above --max_train_seconds 1"):
        leave_out_by_duration(train_list, 2.0, 1.0, progress=False)


def test_durations_of_other_formats_come_from_libsndfile(tmp_path):
    from voxtrainer.reading.lists import durations_of
    paths = [write_wav(tmp_path / "a.wav", numpy.zeros(8000)),
             write_wav(tmp_path / "b.flac", numpy.zeros(24000), subtype="PCM_16")]
    assert durations_of(paths + paths[:1], progress=False) == [0.5, 1.5, 0.5]


def test_the_trainer_prints_the_count_and_refuses_an_empty_list(demo_set, tmp_path, capsys):
    demo = demo_set()
    flags = ["--model", "ResNetSE34L", "--trainfunc", "softmax", "--nClasses", "4", "--train_list", demo.train_list,
             "--test_list", demo.test_list, "--train_path", demo.train_path, "--test_path", demo.test_path,
             "--save_path", str(tmp_path), "--nOut", "16", "--max_frames", "50", "--batch_size", "2",
             "--nDataLoaderThread", "0"]
    assert trainSpeakerNet.main(flags + ["--min_train_seconds", "100"]) == 2
    assert_one_error_line(capsys.readouterr().err, "all 8 utterances are outside [100, inf] s")


# -- repeat padding ---------------------------------------------------------------------------

def test_repeat_padding_tiles_a_short_file_from_its_start(tmp_path):
    """WeSpeaker's get_random_chunk: a file shorter than the crop repeated from its first sample and
    cut to the crop's length, wherever the draw falls."""
    audio = numpy.arange(1, 3001)
    path = write_wav(tmp_path / "a.wav", audio)
    for seed in range(3):
        crop = load_random_crop(path, MAX_FRAMES, random.Random(seed), padding="repeat")
        assert numpy.array_equal(crop, numpy.tile(audio, 4)[:CROP].astype(numpy.float32))


def test_repeat_padding_leaves_files_of_a_crop_or_more_and_the_other_draws_alone(train_list):
    """Only crops of files shorter than one crop change, and the group's later crops do not move."""
    zero = TrainDataset(train_list, MAX_FRAMES)
    repeat = TrainDataset(train_list, MAX_FRAMES, padding="repeat")
    lengths = [soundfile.info(path).frames for path in train_list.files]
    for seed in range(4):
        group = Group((0, 3, 1, 2), 0, seed)  # 0.25 s, 1.5 s, 0.5 s, 1.0 s (a crop: 0.515 s)
        zero_crops, repeat_crops = zero[group][0].float(), repeat[group][0].float()
        for row, index in enumerate(group.utterances):
            same = torch.equal(zero_crops[row], repeat_crops[row])
            assert same == (lengths[index] >= CROP)


def test_the_2021_protocol_already_repeats_and_refuses_zero_padding(train_list):
    group = Group((0, 1), 0, 0)  # 0.25 s and 0.5 s: shorter than a crop
    own = TrainDataset(train_list, MAX_FRAMES, protocol="2021")[group][0]
    assert torch.equal(TrainDataset(train_list, MAX_FRAMES, protocol="2021", padding="repeat")[group][0], own)
    with pytest.raises(InputError, match="2021 protocol repeats short files"):
        TrainDataset(train_list, MAX_FRAMES, protocol="2021", padding="zero")


def test_under_the_2021_protocol_a_short_file_crop_is_the_repeated_file_scaled(tmp_path):
    audio = numpy.arange(1, 3001)
    path = write_wav(tmp_path / "a.wav", audio)
    crop = load_random_crop(path, MAX_FRAMES, random.Random(0), protocol="2021")
    assert numpy.array_equal(crop, numpy.tile(audio, 4)[:CROP].astype(numpy.float32) / INT16_SCALE)


# -- through trainSpeakerNet ------------------------------------------------------------------

def test_training_with_every_recipe_option_runs_with_three_classes_per_speaker_and_dithers_only_training(
        demo_set, tmp_path, capsys, monkeypatch):
    demo = demo_set()
    dithered = []

    def recorded_dither(crops, amount, rng, protocol="2020"):
        dithered.append(crops.shape)
        return original_dither(crops, amount, rng, protocol)
    original_dither = perturb.dither
    monkeypatch.setattr(perturb, "dither", recorded_dither)
    trainSpeakerNet.main(["--model", "ResNetSE34L", "--trainfunc", "softmax", "--nClasses", "4",
                          "--train_list", demo.train_list, "--test_list", demo.test_list,
                          "--train_path", demo.train_path, "--test_path", demo.test_path,
                          "--save_path", str(tmp_path), "--nOut", "16", "--max_frames", "50", "--batch_size", "2",
                          "--max_epoch", "1", "--test_interval", "1", "--nDataLoaderThread", "0",
                          "--speed_perturb", "--dither", "1.0", "--min_train_seconds", "0.5",
                          "--max_train_seconds", "30", "--short_crop_padding", "repeat"])
    assert ("duration filter [0.5, 30] s: 8 utterances of 4 speakers left; left out 0 of 8 (0 shorter, 0 longer)"
            in capsys.readouterr().out)
    saved = torch.load(next((tmp_path / "model").glob("*.model")), map_location="cpu", weights_only=False)
    heads = [tensor for name, tensor in saved.items() if name.startswith("__L__") and tensor.dim() == 2]
    assert heads and all(12 in tensor.shape for tensor in heads)
    # Groups of 1 training crop each; the evaluation's 10 crops per file are never dithered.
    assert dithered and set(dithered) == {(1, CROP)}
