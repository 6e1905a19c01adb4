"""Specification of the synthetic VoxCeleb-style demo set (voxtrainer/data/demo.py)."""

import filecmp
import os
import re
import sys

import numpy as np
import pytest
import soundfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voxtrainer.data.demo import make_demo_set  # noqa: E402

TINY = dict(n_train_speakers=3, n_test_speakers=3, utts_per_speaker=3, utts_per_test_speaker=3,
            utts_per_clip=2, min_duration=1.0, max_duration=1.5, workers=1, verbose=False)
VOXCELEB_PATH = re.compile(r"^id\d{5}/clip\d{2}/\d{5}\.wav$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_a")
    return make_demo_set(str(root), **TINY)


def read_train_list(paths):
    with open(paths.train_list) as handle:
        return [line.split() for line in handle]


def read_test_list(paths):
    with open(paths.test_list) as handle:
        return [line.split() for line in handle]


def speaker_of(relpath):
    return relpath.split("/")[0]


def all_wavs(directory):
    return sorted(os.path.relpath(os.path.join(parent, name), directory)
                  for parent, _, names in os.walk(directory) for name in names if name.endswith(".wav"))


def test_returns_paths_in_voxceleb_layout(demo):
    assert demo.train_path.endswith(os.path.join("demo", "train"))
    assert demo.test_path.endswith(os.path.join("demo", "test"))
    assert os.path.dirname(demo.train_list) == os.path.dirname(demo.train_path)
    assert os.path.dirname(demo.test_list) == os.path.dirname(demo.test_path)
    for directory in (demo.train_path, demo.test_path):
        wavs = all_wavs(directory)
        assert wavs and all(VOXCELEB_PATH.match(path) for path in wavs)


def test_wavs_are_16khz_mono_int16(demo):
    for directory in (demo.train_path, demo.test_path):
        for relpath in all_wavs(directory):
            info = soundfile.info(os.path.join(directory, relpath))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


def test_lengths_within_requested_range(demo):
    for directory in (demo.train_path, demo.test_path):
        for relpath in all_wavs(directory):
            seconds = soundfile.info(os.path.join(directory, relpath)).frames / 16000
            assert TINY["min_duration"] <= seconds <= TINY["max_duration"]


def test_audio_is_neither_silent_nor_clipped(demo):
    audio, _ = soundfile.read(os.path.join(demo.train_path, read_train_list(demo)[0][1]), dtype="int16")
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(audio.astype(float) ** 2)) / 32768)
    assert -40 < rms_dbfs < -10
    assert np.mean(np.abs(audio) >= 32767) < 1e-3


def test_train_list_names_speaker_and_existing_file(demo):
    lines = read_train_list(demo)
    assert len(lines) == TINY["n_train_speakers"] * TINY["utts_per_speaker"]
    for speaker, relpath in lines:
        assert VOXCELEB_PATH.match(relpath) and speaker == speaker_of(relpath)
        assert os.path.isfile(os.path.join(demo.train_path, relpath))
    assert sorted(relpath for _, relpath in lines) == all_wavs(demo.train_path)
    assert len({speaker for speaker, _ in lines}) == TINY["n_train_speakers"]


def test_test_list_is_balanced_labelled_pairs_covering_every_file(demo):
    trials = read_test_list(demo)
    labels = [label for label, _, _ in trials]
    assert set(labels) == {"0", "1"} and labels.count("1") == labels.count("0")
    for label, enrol, test in trials:
        assert enrol != test
        assert (label == "1") == (speaker_of(enrol) == speaker_of(test))
        assert os.path.isfile(os.path.join(demo.test_path, enrol))
        assert os.path.isfile(os.path.join(demo.test_path, test))
    used = {path for _, enrol, test in trials for path in (enrol, test)}
    assert sorted(used) == all_wavs(demo.test_path)


def test_train_and_test_speakers_are_disjoint(demo):
    train_speakers = {speaker for speaker, _ in read_train_list(demo)}
    test_speakers = {speaker_of(path) for _, enrol, test in read_test_list(demo) for path in (enrol, test)}
    assert len(test_speakers) == TINY["n_test_speakers"]
    assert not train_speakers & test_speakers


def test_same_arguments_give_identical_bytes(demo, tmp_path_factory):
    again = make_demo_set(str(tmp_path_factory.mktemp("demo_b")), **TINY)
    for first, second in ((demo.train_path, again.train_path), (demo.test_path, again.test_path)):
        relpaths = all_wavs(first)
        assert relpaths == all_wavs(second)
        _, mismatch, errors = filecmp.cmpfiles(first, second, relpaths, shallow=False)
        assert not mismatch and not errors
    assert filecmp.cmp(demo.train_list, again.train_list, shallow=False)
    assert filecmp.cmp(demo.test_list, again.test_list, shallow=False)


def test_parallel_workers_give_the_same_files(demo, tmp_path_factory):
    parallel = make_demo_set(str(tmp_path_factory.mktemp("demo_c")), **{**TINY, "workers": 2})
    relpaths = all_wavs(demo.test_path)
    _, mismatch, errors = filecmp.cmpfiles(demo.test_path, parallel.test_path, relpaths, shallow=False)
    assert not mismatch and not errors


def test_another_seed_gives_other_audio(demo, tmp_path_factory):
    other = make_demo_set(str(tmp_path_factory.mktemp("demo_d")), **{**TINY, "seed": 7})
    relpath = read_train_list(demo)[0][1]
    assert not filecmp.cmp(os.path.join(demo.train_path, relpath), os.path.join(other.train_path, relpath),
                           shallow=False)


def test_utterances_of_one_speaker_differ(demo):
    first_speaker = read_train_list(demo)[0][0]
    relpaths = [relpath for speaker, relpath in read_train_list(demo) if speaker == first_speaker]
    clips = [soundfile.read(os.path.join(demo.train_path, relpath))[0] for relpath in relpaths]
    levels = [np.sqrt(np.mean(clip ** 2)) for clip in clips]
    assert len(set(levels)) == len(clips)
    for a in range(len(clips)):
        for b in range(a + 1, len(clips)):
            n = min(len(clips[a]), len(clips[b]))
            # Different sentences, not a copy or rescaled copy of one waveform.
            assert abs(np.corrcoef(clips[a][:n], clips[b][:n])[0, 1]) < 0.5


def test_command_line_writes_the_set(tmp_path, monkeypatch, capsys):
    from voxtrainer.data import demo as demo_module
    monkeypatch.setattr(sys, "argv", ["demo.py", "--save_path", str(tmp_path), "--n_train_speakers", "2",
                                      "--n_test_speakers", "2", "--utts_per_speaker", "2",
                                      "--utts_per_test_speaker", "2", "--workers", "1"])
    demo_module.main()
    assert os.path.isfile(tmp_path / "demo" / "train_list.txt")
    assert os.path.isfile(tmp_path / "demo" / "test_list.txt")
    assert "demo set" in capsys.readouterr().out


def test_rejects_a_test_set_too_small_for_trials(tmp_path):
    with pytest.raises(ValueError):
        make_demo_set(str(tmp_path), **{**TINY, "utts_per_test_speaker": 1})


def test_voices_differ_between_speakers_far_more_than_a_speaker_drifts():
    from voxtrainer.data.voices import draw_speaker_voice, perturb_voice
    voices = [draw_speaker_voice(np.random.default_rng([1, s])) for s in range(200)]
    drifted = [perturb_voice(voices[0], np.random.default_rng([2, u])) for u in range(200)]
    for spread_of in (lambda v: np.log(v.f0_hz), lambda v: np.log(v.formant_scale),
                      lambda v: v.tilt_db_per_octave):
        between = np.std([spread_of(v) for v in voices])
        within = np.std([spread_of(v) for v in drifted])
        assert between > 10 * within


def test_background_noise_colour_changes_within_a_clip():
    # Utterances of a clip share the channel, but a noise colour shared by all of a
    # speaker's training utterances would let the network identify clips, not voices.
    from voxtrainer.data.voices import SAMPLE_RATE, draw_channel, record
    channel = draw_channel(np.random.default_rng(0))
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE)
    low_to_high_db = []
    for utterance in range(8):
        pcm = record(np.random.default_rng([3, utterance]), tone, channel, (20.0, 20.0))
        spectrum = np.abs(np.fft.rfft(pcm.astype(float))) ** 2
        freqs = np.fft.rfftfreq(len(pcm), 1.0 / SAMPLE_RATE)
        low = spectrum[(freqs > 200) & (freqs < 500)].mean()
        high = spectrum[(freqs > 3000) & (freqs < 5000)].mean()
        low_to_high_db.append(10 * np.log10(low / high))
    # Noise slopes from white to brown span over 20 dB between these bands.
    assert np.ptp(low_to_high_db) > 10.0
