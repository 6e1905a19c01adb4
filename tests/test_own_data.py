"""From your own recordings to lists the trainer reads: dataprep.py --make_lists --from_folder, the
train/test leakage warning of training, and --initial_model given as a URL."""

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from http_server import FakeServer

import trainSpeakerNet
from conftest import assert_one_error_line
from SpeakerNet import SpeakerNet
from voxtrainer.data.folder import make_trials, split_speakers
from voxtrainer.reading.lists import TestList, TrainList, leakage_warning
from voxtrainer.inference.remote import cached_name

REPO = Path(__file__).resolve().parent.parent
DATAPREP = REPO / "dataprep.py"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
PROGRESS_BAR = re.compile(r"\d+%\|")


# ---------------------------------------------------------------------------
# Helpers


def tone(seconds, rate, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.01 * rng.standard_normal(t.size)).astype("float32")


def write_recording(path, kind, seed):
    """One short recording in the format `kind`: wav8k_stereo, flac16k, mp3 (through ffmpeg) or wav16k
    (already what the trainer reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "wav8k_stereo":
        signal = tone(0.6, 8000, seed)
        soundfile.write(path.with_suffix(".wav"), np.stack([signal, signal[::-1]], axis=1), 8000, subtype="PCM_16")
    elif kind == "flac16k":
        soundfile.write(path.with_suffix(".flac"), tone(0.6, 16000, seed), 16000)
    elif kind == "wav16k":
        soundfile.write(path.with_suffix(".wav"), tone(0.6, 16000, seed), 16000, subtype="PCM_16")
    elif kind == "mp3":
        source = path.with_suffix(".source.wav")
        soundfile.write(source, tone(0.6, 22050, seed), 22050, subtype="PCM_16")
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
                        str(path.with_suffix(".mp3"))], check=True)
        source.unlink()
    else:
        raise ValueError(kind)


KINDS = ("wav8k_stereo", "flac16k", "mp3", "wav16k")


def make_recordings(folder, n_speakers=6, per_speaker=3):
    """folder/spkN/sessionM/uttK.<ext> in mixed formats, nested one level or two."""
    for speaker in range(n_speakers):
        for utterance in range(per_speaker):
            kind = KINDS[(speaker + utterance) % len(KINDS)]
            sub = f"session{utterance % 2}" if utterance else "day1/session0"
            write_recording(folder / f"spk{speaker}" / sub / f"utt{utterance}", kind, speaker * 10 + utterance)
    return folder


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    return make_recordings(tmp_path_factory.mktemp("own") / "recordings")


def run_dataprep(*args, timeout=120):
    return subprocess.run([sys.executable, str(DATAPREP), *map(str, args), "--workers", "2"], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)


def make_lists(folder, out, *flags):
    return run_dataprep("--make_lists", "--from_folder", folder, "--save_path", out, *flags)


def assert_bad_input(result, *phrases):
    """Exit status 2, no traceback, and stderr holding nothing but progress bars, warnings and one last
    line `dataprep.py: error: ...` with every phrase."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    segments = [segment.strip() for segment in re.split(r"[\r\n]", result.stderr) if segment.strip()]
    lines = [segment for segment in segments if not PROGRESS_BAR.search(segment) and not segment.startswith("warning:")]
    assert len(lines) == 1 and lines[0] == segments[-1], result.stderr
    assert lines[0].startswith("dataprep.py: error: "), lines[0]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def read_lists(out):
    train = [line.split() for line in (out / "train_list.txt").read_text().splitlines()]
    test = [line.split() for line in (out / "test_list.txt").read_text().splitlines()]
    return train, test


def digest_tree(folder):
    return {path.relative_to(folder): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# ---------------------------------------------------------------------------
# Lists from a folder


@pytest.fixture(scope="module")
def prepared(recordings, tmp_path_factory):
    """The recordings, untouched before, and one run of --make_lists --from_folder on them."""
    before = digest_tree(recordings)
    out = tmp_path_factory.mktemp("prepared") / "out"
    result = make_lists(recordings, out, "--test_speakers", "2", "--trials", "20", "--seed", "3")
    return recordings, before, out, result


@needs_ffmpeg
def test_every_recording_becomes_a_16k_mono_16bit_wav_under_one_root(prepared):
    recordings, before, out, result = prepared
    assert result.returncode == 0, result.stderr
    train, test = read_lists(out)
    listed = {path for _, path in train} | {path for trial in test for path in trial[1:]}
    for name in listed:
        info = soundfile.info(out / "wav" / name)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), name
    n_recordings = sum(1 for path in recordings.rglob("*") if path.is_file())
    assert len(list((out / "wav").rglob("*.wav"))) == n_recordings
    assert digest_tree(recordings) == before, "the recordings must only be read"


@needs_ffmpeg
def test_wavs_already_right_are_linked_not_copied(prepared):
    recordings, _, out, result = prepared
    ready = [path for path in recordings.rglob("*.wav") if soundfile.info(path).samplerate == 16000]
    assert ready
    for path in ready:
        linked = out / "wav" / path.relative_to(recordings)
        assert linked.is_symlink() and linked.resolve() == path.resolve()


@needs_ffmpeg
def test_train_list_is_the_seeds_format_and_holds_out_the_test_speakers(prepared):
    recordings, _, out, _ = prepared
    train, test = read_lists(out)
    assert all(len(fields) == 2 and fields[1].startswith(fields[0] + "/") for fields in train)
    train_speakers = {speaker for speaker, _ in train}
    test_speakers = {path.split("/")[0] for trial in test for path in trial[1:]}
    assert len(test_speakers) == 2 and len(train_speakers) == 4
    assert not train_speakers & test_speakers
    assert [line for line in (out / "train_list.txt").read_text().splitlines()] == sorted(
        " ".join(fields) for fields in train)


@needs_ffmpeg
def test_test_list_is_balanced_without_self_or_repeated_trials(prepared):
    _, _, out, result = prepared
    _, test = read_lists(out)
    labels = [trial[0] for trial in test]
    # 2 held-out speakers of 3 recordings: 6 distinct target pairs, so 12 of the 20 trials asked for.
    assert labels.count("1") == labels.count("0") == 6
    assert "only 6 distinct target pairs" in result.stderr
    for label, enrol, test_file in test:
        assert enrol != test_file
        assert (enrol.split("/")[0] == test_file.split("/")[0]) == (label == "1")
    pairs = [frozenset(trial[1:]) for trial in test]
    assert len(set(pairs)) == len(pairs)


@needs_ffmpeg
def test_the_printed_commands_use_the_lists_and_their_root(prepared):
    _, _, out, result = prepared
    root = str((out / "wav").resolve())
    assert f"--train_path {root}" in result.stdout and f"--test_path {root}" in result.stdout
    assert f"--train_list {(out / 'train_list.txt').resolve()}" in result.stdout
    assert "python ./trainSpeakerNet.py --eval" in result.stdout


@needs_ffmpeg
def test_the_trainer_reads_the_lists_and_finds_no_leakage(prepared):
    _, _, out, _ = prepared
    train_list = TrainList(str(out / "train_list.txt"), str(out / "wav"))
    test_list = TestList(str(out / "test_list.txt"), str(out / "wav"))
    test_list.check_audio(progress=False)
    assert leakage_warning(train_list, test_list) is None


@needs_ffmpeg
def test_a_rerun_converts_nothing_and_the_same_seed_gives_the_same_lists(prepared):
    recordings, _, out, first = prepared
    lists = read_lists(out)
    again = make_lists(recordings, out, "--test_speakers", "2", "--trials", "20", "--seed", "3")
    assert again.returncode == 0, again.stderr
    assert "0 linked" in again.stdout and "0 to convert" in again.stdout
    assert read_lists(out) == lists


def test_the_seed_chooses_the_held_out_speakers_and_the_trials():
    files = {f"s{speaker}": [f"s{speaker}/{n}.wav" for n in range(5)] for speaker in range(10)}
    splits = {seed: split_speakers(files, 3, seed, "DIR") for seed in range(6)}
    assert splits[0] == split_speakers(files, 3, 0, "DIR")
    assert len({tuple(test) for _, test in splits.values()}) > 1
    import random
    test = {speaker: files[speaker] for speaker in splits[0][1]}
    assert make_trials(test, 40, random.Random(0)) == make_trials(test, 40, random.Random(0))
    assert make_trials(test, 40, random.Random(0)) != make_trials(test, 40, random.Random(1))


def test_many_trials_from_many_files_are_distinct_and_balanced():
    import random
    files = {f"s{speaker}": [f"s{speaker}/{n}.wav" for n in range(50)] for speaker in range(20)}
    trials = make_trials(files, 3001, random.Random(0))
    assert len(trials) == 3001 and sum(label for label, _, _ in trials) == 1500
    assert len({frozenset(trial[1:]) for trial in trials}) == 3001
    assert all(enrol != test for _, enrol, test in trials)


def test_a_fraction_of_the_speakers_is_rounded_and_at_least_two():
    files = {f"s{speaker}": ["a", "b"] for speaker in range(10)}
    assert len(split_speakers(files, 0.3, 0, "DIR")[1]) == 3
    assert len(split_speakers(files, 0.05, 0, "DIR")[1]) == 2


def test_speakers_with_one_recording_are_left_out_with_one_warning(tmp_path):
    # The pair-based losses of the printed commands refuse a speaker with one recording, and it
    # cannot give a target trial: it is named, not converted, and in neither list.
    folder = tmp_path / "recordings"
    for speaker in range(4):
        for utterance in range(2):
            write_recording(folder / f"spk{speaker}" / f"u{utterance}", "wav16k", speaker * 3 + utterance)
    write_recording(folder / "lonely" / "u0", "flac16k", 99)
    write_recording(folder / "solo" / "u0", "wav16k", 98)
    result = make_lists(folder, tmp_path / "out", "--test_speakers", "2")
    assert result.returncode == 0, result.stderr
    assert "2 speaker(s) with a single recording left out of both lists" in result.stderr
    assert "lonely, solo" in result.stderr
    train, test = read_lists(tmp_path / "out")
    listed = {speaker for speaker, _ in train} | {path.split("/")[0] for trial in test for path in trial[1:]}
    assert listed == {"spk0", "spk1", "spk2", "spk3"}
    assert not (tmp_path / "out" / "wav" / "lonely").exists()


# -- bad input: one line, exit status 2 ------------------------------------------------------

def test_a_folder_without_audio_is_one_line(tmp_path):
    (tmp_path / "recordings" / "spk1").mkdir(parents=True)
    (tmp_path / "recordings" / "spk1" / "notes.txt").write_text("no audio here")
    assert_bad_input(make_lists(tmp_path / "recordings", tmp_path / "out"), "no recordings", "recordings")


def test_a_missing_folder_is_one_line(tmp_path):
    assert_bad_input(make_lists(tmp_path / "nowhere", tmp_path / "out"), "--from_folder", "nowhere")


def test_one_speaker_is_one_line(tmp_path):
    for utterance in range(3):
        write_recording(tmp_path / "recordings" / "alice" / f"u{utterance}", "wav16k", utterance)
    write_recording(tmp_path / "recordings" / "bob" / "u0", "wav16k", 5)   # one recording: not counted
    assert_bad_input(make_lists(tmp_path / "recordings", tmp_path / "out"), "only 1 speaker(s)", "(alice)")


@needs_ffmpeg
def test_unreadable_recordings_are_all_listed_in_one_line(tmp_path):
    folder = tmp_path / "recordings"
    for speaker in range(3):
        for utterance in range(2):
            write_recording(folder / f"spk{speaker}" / f"u{utterance}", "flac16k", speaker * 2 + utterance)
    (folder / "spk0" / "broken.mp3").write_bytes(b"this is not audio")
    (folder / "spk2" / "empty.wav").write_bytes(b"")
    line = assert_bad_input(make_lists(folder, tmp_path / "out", "--test_speakers", "2"),
                            "2 of 8 recording(s) could not be read")
    assert str(folder / "spk0" / "broken.mp3") in line and str(folder / "spk2" / "empty.wav") in line
    assert not (tmp_path / "out" / "train_list.txt").exists()


def test_paths_with_spaces_are_all_listed_in_one_line(tmp_path):
    folder = tmp_path / "recordings"
    for speaker in ("ann", "bob lee", "cat"):
        for utterance in range(2):
            write_recording(folder / speaker / f"u {utterance}", "wav16k", utterance)
    line = assert_bad_input(make_lists(folder, tmp_path / "out"), "contain spaces")
    assert "bob lee/u 0.wav" in line and "ann/u 1.wav" in line


def test_a_save_path_inside_the_recordings_is_refused(tmp_path):
    folder = tmp_path / "recordings"
    for speaker in range(3):
        write_recording(folder / f"spk{speaker}" / "u0", "wav16k", speaker)
    assert_bad_input(make_lists(folder, folder / "lists"), "overlap")
    assert not (folder / "lists").exists()


@pytest.mark.parametrize("count, phrase", [("1", "at least 2 speakers"), ("3", "no speaker of the 3"),
                                           ("0.9", "(3 of 3 speakers): no speaker of the 3")])
def test_impossible_splits_are_one_line_before_any_conversion(tmp_path, count, phrase):
    folder = tmp_path / "recordings"
    for speaker in range(3):
        for utterance in range(2):
            write_recording(folder / f"spk{speaker}" / f"u{utterance}", "flac16k", speaker * 2 + utterance)
    write_recording(folder / "spk3" / "u0", "flac16k", 9)   # one recording: not counted
    result = make_lists(folder, tmp_path / "out", "--test_speakers", count)
    assert_bad_input(result, "--test_speakers", phrase)
    assert not list((tmp_path / "out").rglob("*.wav"))


def test_from_folder_needs_make_lists(tmp_path):
    result = run_dataprep("--from_folder", tmp_path, "--save_path", tmp_path / "out", "--convert")
    assert result.returncode == 2 and "--from_folder goes with --make_lists" in result.stderr


# ---------------------------------------------------------------------------
# Leakage between the train and the test list


def write_list(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


@pytest.fixture
def files(tmp_path):
    """Empty files standing for audio under two roots: the list readers only check that they exist."""
    for root, names in (("train", ["id1/a/1.wav", "id1/a/2.wav", "id2/b/1.wav", "id2/b/2.wav"]),
                        ("test", ["id8/c/1.wav", "id8/c/2.wav", "id9/d/1.wav", "id1/z/9.wav"])):
        for name in names:
            (tmp_path / root / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / root / name).write_bytes(b"")
    return tmp_path


TRAIN_LINES = ["id1 id1/a/1.wav", "id1 id1/a/2.wav", "id2 id2/b/1.wav", "id2 id2/b/2.wav"]


def test_no_warning_when_the_lists_share_nothing(files):
    train = TrainList(write_list(files / "train.txt", TRAIN_LINES), str(files / "train"))
    test = TestList(write_list(files / "test.txt", ["1 id8/c/1.wav id8/c/2.wav", "0 id8/c/1.wav id9/d/1.wav"]),
                    str(files / "test"))
    assert leakage_warning(train, test) is None


def test_a_shared_speaker_is_counted_and_named(files):
    train = TrainList(write_list(files / "train.txt", TRAIN_LINES), str(files / "train"))
    test = TestList(write_list(files / "test.txt", ["1 id8/c/1.wav id8/c/2.wav", "0 id1/z/9.wav id9/d/1.wav"]),
                    str(files / "test"))
    warning = leakage_warning(train, test)
    assert "1 speaker(s) (e.g. id1)" in warning and "inflated" in warning
    assert "file(s)" not in warning and str(files / "test.txt") in warning


def test_a_shared_file_is_found_through_a_different_but_equal_root(files):
    (files / "link").symlink_to(files / "train")
    train = TrainList(write_list(files / "train.txt", TRAIN_LINES), str(files / "train"))
    test = TestList(write_list(files / "test.txt", ["1 id2/b/1.wav id2/b/2.wav", "0 id2/b/1.wav id1/a/1.wav"]),
                    str(files / "link") + "/")
    warning = leakage_warning(train, test)
    assert "2 speaker(s)" in warning and "3 of its 3 file(s) (e.g. id1/a/1.wav)" in warning


@pytest.fixture(scope="module")
def demo(demo_set):
    return demo_set()


def train_on_demo(demo, save_path, test_list, test_path):
    return trainSpeakerNet.main([
        "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2", "--nOut", "32",
        "--max_frames", "50", "--eval_frames", "50", "--batch_size", "2", "--max_epoch", "1", "--test_interval", "1",
        "--nDataLoaderThread", "0", "--train_list", demo.train_list, "--train_path", demo.train_path,
        "--test_list", test_list, "--test_path", test_path, "--save_path", str(save_path)])


def test_training_warns_once_when_the_test_list_holds_training_speakers(demo, tmp_path, capsys):
    lines = open(demo.train_list).read().split("\n")
    speakers = {}
    for line in filter(None, lines):
        speaker, path = line.split()
        speakers.setdefault(speaker, []).append(path)
    first, second = sorted(speakers)[:2]
    leaky = write_list(tmp_path / "leaky.txt", ["1 %s %s" % tuple(speakers[first][:2]),
                                                "0 %s %s" % (speakers[first][0], speakers[second][0])])
    assert train_on_demo(demo, tmp_path / "run", leaky, demo.train_path) == 0
    err = capsys.readouterr().err
    assert err.count("train/test leakage") == 1, err
    assert "WARNING: train/test leakage" in err and "2 speaker(s)" in err and "3 of its 3 file(s)" in err
    assert "train/test leakage" in (tmp_path / "run" / "result" / "train.log").read_text()


def test_training_on_disjoint_lists_says_nothing_about_leakage(demo, tmp_path, capsys):
    assert train_on_demo(demo, tmp_path / "run", demo.test_list, demo.test_path) == 0
    assert "leakage" not in capsys.readouterr().err


# ---------------------------------------------------------------------------
# --initial_model URL


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "random.model"
    torch.manual_seed(0)
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32).saveParameters(str(path))
    return path.read_bytes()


def evaluate(demo, save_path, initial_model, *flags):
    return trainSpeakerNet.main([
        "--eval", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--eval_frames", "50",
        "--initial_model", initial_model, "--test_list", demo.test_list, "--test_path", demo.test_path,
        "--save_path", str(save_path), "--nDataLoaderThread", "0", *flags])


def one_line_error(capsys, status, *needles):
    assert status == 2
    return assert_one_error_line(capsys.readouterr().err, *needles)


def test_a_url_is_downloaded_once_into_the_cache_and_its_sha256_printed(demo, checkpoint, tmp_path, capsys):
    sha256 = hashlib.sha256(checkpoint).hexdigest()
    with FakeServer({"/models/random.model": checkpoint}) as server:
        url = server.url("/models/random.model")
        cache = tmp_path / "cache"
        assert evaluate(demo, tmp_path / "a", url, "--model_cache", str(cache)) == 0
        cached = cache / cached_name(url)
        assert cached.read_bytes() == checkpoint and cached.name.endswith("-random.model")
        assert sha256 in capsys.readouterr().out
        assert evaluate(demo, tmp_path / "b", url, "--model_cache", str(cache), "--initial_model_sha256", sha256) == 0
        assert "cached as" in capsys.readouterr().out
        assert len(server.part_requests("random.model")) == 1
    scores = [open(tmp_path / run / "result" / "eval_scores.txt").read() for run in ("a", "b")]
    assert evaluate(demo, tmp_path / "c", str(cached)) == 0
    assert scores[0] == scores[1] == open(tmp_path / "c" / "result" / "eval_scores.txt").read()


def test_the_default_cache_is_under_xdg_cache_home(demo, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with FakeServer({"/m.model": checkpoint}) as server:
        assert evaluate(demo, tmp_path / "a", server.url("/m.model")) == 0
        assert (tmp_path / "xdg" / "voxtrainer" / cached_name(server.url("/m.model"))).is_file()


def test_an_interrupted_download_resumes(demo, checkpoint, tmp_path):
    with FakeServer({"/m.model": checkpoint}) as server:
        server.drop_after["/m.model"] = len(checkpoint) // 2
        assert evaluate(demo, tmp_path / "a", server.url("/m.model"), "--model_cache", str(tmp_path)) == 0
        ranges = [request[1] for request in server.part_requests("m.model")]
        assert ranges == [None, f"bytes={len(checkpoint) // 2}-"]


def test_a_wrong_sha256_removes_the_download_and_is_one_line(demo, checkpoint, tmp_path, capsys):
    with FakeServer({"/m.model": checkpoint}) as server:
        status = evaluate(demo, tmp_path / "a", server.url("/m.model"), "--model_cache", str(tmp_path / "cache"),
                          "--initial_model_sha256", "0" * 64)
    one_line_error(capsys, status, "sha256 %s" % hashlib.sha256(checkpoint).hexdigest(), "0" * 64, "removed")
    assert not list((tmp_path / "cache").iterdir())


def test_a_cached_file_with_another_sha256_is_fetched_again(demo, checkpoint, tmp_path, capsys):
    with FakeServer({"/m.model": checkpoint}) as server:
        url = server.url("/m.model")
        (tmp_path / cached_name(url)).write_bytes(b"an older file")
        assert evaluate(demo, tmp_path / "a", url, "--model_cache", str(tmp_path),
                        "--initial_model_sha256", hashlib.sha256(checkpoint).hexdigest().upper()) == 0
        assert "fetching it again" in capsys.readouterr().err
        assert (tmp_path / cached_name(url)).read_bytes() == checkpoint


@pytest.mark.parametrize("case, needles", [
    ("missing", ["not found (HTTP 404)", "--initial_model URL"]),
    ("html", ["sent a web page (text/html; charset=utf-8)", "--initial_model URL"]),
    ("bad_sha", ["--initial_model_sha256 abc: not a sha256"]),
])
def test_unusable_urls_are_one_line(demo, checkpoint, tmp_path, capsys, case, needles):
    with FakeServer({"/login": b"<html><body>please log in</body></html>", "/m.model": checkpoint}) as server:
        server.content_types["/login"] = "text/html; charset=utf-8"
        url = {"missing": server.url("/nothing.model"), "html": server.url("/login"),
               "bad_sha": server.url("/m.model")}[case]
        flags = ["--initial_model_sha256", "abc"] if case == "bad_sha" else []
        status = evaluate(demo, tmp_path / "a", url, "--model_cache", str(tmp_path / "cache"), *flags)
    one_line_error(capsys, status, *needles)
    cache = tmp_path / "cache"
    assert not cache.exists() or not list(cache.iterdir())


def test_a_local_file_with_a_wrong_sha256_is_refused_and_kept(demo, checkpoint, tmp_path, capsys):
    local = tmp_path / "mine.model"
    local.write_bytes(checkpoint)
    status = evaluate(demo, tmp_path / "a", str(local), "--initial_model_sha256", "1" * 64)
    one_line_error(capsys, status, str(local), "1" * 64)
    assert local.read_bytes() == checkpoint


def test_the_cache_name_stays_inside_the_cache():
    for url in ("http://h/../../etc/passwd", "https://h/a b/..", "http://h/", "https://h/x/mod%2F..%2Fel.pt?v=1"):
        name = cached_name(url)
        assert "/" not in name and not name.startswith(".") and name not in ("", "..")


def test_a_sha256_without_a_model_is_one_line(demo, tmp_path, capsys):
    status = evaluate(demo, tmp_path / "a", "", "--initial_model_sha256", "2" * 64)
    one_line_error(capsys, status, "--initial_model_sha256 checks --initial_model")
