"""Hostile lists and test audio: labels other than 0/1, unlabelled or one-class test lists, byte-order
marks, lines that are not UTF-8, bad test audio found before the first epoch, float WAVs scored as
their 16-bit originals. Every user error is one line `error: <list>:<line>: ...`, exit status 2."""

import os
import shutil

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from SpeakerNet import SpeakerNet
from voxtrainer.reading import lists
from voxtrainer.errors import InputError
from voxtrainer.reading.lists import TestList, TrainList, read_path_list

BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_set):
    """The tiny demo set and a freshly saved random checkpoint for --eval."""
    root = tmp_path_factory.mktemp("bad_lists")
    torch.manual_seed(0)
    checkpoint = str(root / "random.model")
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32).saveParameters(checkpoint)
    return demo_set(), checkpoint


def evaluate(setup, save_path, test_list, test_path=None):
    demo, checkpoint = setup
    return trainSpeakerNet.main([
        "--eval", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--eval_frames", "50",
        "--initial_model", checkpoint, "--test_list", test_list, "--test_path", test_path or demo.test_path,
        "--save_path", str(save_path), "--nDataLoaderThread", "0"])


def train(setup, save_path, train_list=None, test_list=None, test_path=None):
    demo, _ = setup
    return trainSpeakerNet.main([
        "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2", "--nOut", "32",
        "--max_frames", "50", "--eval_frames", "50", "--batch_size", "2", "--max_epoch", "1", "--test_interval", "1",
        "--nDataLoaderThread", "0", "--train_list", train_list or demo.train_list, "--train_path", demo.train_path,
        "--test_list", test_list or demo.test_list, "--test_path", test_path or demo.test_path,
        "--save_path", str(save_path)])


def one_line_error(capsys, status, *needles):
    """Exit status 2, no traceback, exactly one line on stderr: `error: ...` holding every needle."""
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write(path, lines):
    """A list file from text lines (or raw bytes)."""
    data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode()
    path.write_bytes(data)
    return str(path)


def demo_trials(setup):
    demo, _ = setup
    return open(demo.test_list).read().splitlines()


def nothing_trained(save_path):
    model_dir = save_path / "model"
    return not model_dir.exists() or not [name for name in os.listdir(model_dir) if name.endswith(".model")]


# -- labels -----------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["2", "-1", "yes", "1.0"])
def test_a_label_other_than_0_or_1_is_an_error_naming_the_line(setup, tmp_path, capsys, label):
    trials = demo_trials(setup)
    listfile = write(tmp_path / "list.txt", trials[:2] + [label + " " + trials[2].split(" ", 1)[1]] + trials[3:])
    status = evaluate(setup, tmp_path / "exp", listfile)
    one_line_error(capsys, status, "%s:3: label must be 0 or 1, found '%s'" % (listfile, label))


def test_a_bad_label_stops_training_before_the_first_epoch(setup, tmp_path, capsys):
    trials = demo_trials(setup)
    listfile = write(tmp_path / "list.txt", trials + ["2 " + trials[0].split(" ", 1)[1]])
    status = train(setup, tmp_path / "exp", test_list=listfile)
    one_line_error(capsys, status, "%s:%d: label must be 0 or 1, found '2'" % (listfile, len(trials) + 1))
    assert nothing_trained(tmp_path / "exp")


def test_an_unlabelled_trial_is_an_error_naming_the_first_one(setup, tmp_path, capsys):
    trials = demo_trials(setup)
    unlabelled = [trial.split(" ", 1)[1] for trial in trials]
    listfile = write(tmp_path / "list.txt", trials[:1] + [""] + unlabelled[1:])
    status = evaluate(setup, tmp_path / "exp", listfile)
    one_line_error(capsys, status, "%s:3: trial has no label" % listfile, "'label enrol test'")


def test_a_list_without_any_labels_is_an_error_before_training(setup, tmp_path, capsys):
    listfile = write(tmp_path / "list.txt", [trial.split(" ", 1)[1] for trial in demo_trials(setup)])
    status = train(setup, tmp_path / "exp", test_list=listfile)
    one_line_error(capsys, status, "%s:1: trial has no label" % listfile)
    assert nothing_trained(tmp_path / "exp")


@pytest.mark.parametrize("label", ["0", "1"])
def test_a_list_of_one_kind_of_trial_is_an_error(setup, tmp_path, capsys, label):
    trials = [label + " " + trial.split(" ", 1)[1] for trial in demo_trials(setup)]
    listfile = write(tmp_path / "list.txt", trials)
    status = evaluate(setup, tmp_path / "exp", listfile)
    one_line_error(capsys, status, listfile, "all %d trials have label %s" % (len(trials), label),
                   "needs both target (1) and non-target (0) trials")


def test_missing_files_are_reported_before_a_one_kind_list(setup, tmp_path, capsys):
    listfile = write(tmp_path / "list.txt", ["1 id1/a.wav id2/b.wav"])
    one_line_error(capsys, evaluate(setup, tmp_path / "exp", listfile), "id1/a.wav (line 1)", "--test_path")


# -- byte-order marks and encodings -----------------------------------------------------------

def test_a_byte_order_mark_does_not_join_the_first_speakers_name(setup, tmp_path, capsys):
    demo, _ = setup
    listfile = write(tmp_path / "train.txt", BOM + open(demo.train_list, "rb").read())
    plain = TrainList(demo.train_list, demo.train_path)
    marked = TrainList(listfile, demo.train_path)
    assert marked.speaker_index == plain.speaker_index and marked.labels == plain.labels
    # With the mark kept, the first speaker would split in two, one with a single utterance: too few
    # for --nSpeakers 2.
    assert train(setup, tmp_path / "exp", train_list=listfile) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_test_list_with_a_byte_order_mark_scores_as_without(setup, tmp_path):
    demo, _ = setup
    listfile = write(tmp_path / "list.txt", BOM + open(demo.test_list, "rb").read())
    assert evaluate(setup, tmp_path / "plain", demo.test_list) == 0
    assert evaluate(setup, tmp_path / "marked", listfile) == 0
    scores = "result/eval_scores.txt"
    assert (tmp_path / "marked" / scores).read_bytes() == (tmp_path / "plain" / scores).read_bytes()


def test_byte_order_marks_in_path_lists_and_concatenated_lists_are_dropped(setup, tmp_path):
    demo, _ = setup
    names = [trial.split()[1] for trial in demo_trials(setup)[:2]]
    listfile = write(tmp_path / "paths.txt", BOM + (names[0] + "\r\n").encode() + BOM + (names[1] + "\r\n").encode())
    assert read_path_list(listfile, demo.test_path, "--test_path", "extract list") == names


def test_a_test_list_line_that_is_not_utf8_is_an_error_naming_it(setup, tmp_path, capsys):
    trials = [trial.encode() + b"\n" for trial in demo_trials(setup)]
    listfile = write(tmp_path / "list.txt", trials[0] + b"1 caf\xe9.wav x.wav\n" + b"".join(trials[1:]))
    status = evaluate(setup, tmp_path / "exp", listfile)
    one_line_error(capsys, status, "%s:2: not UTF-8 text (byte 0xe9)" % listfile)


def test_a_train_list_line_that_is_not_utf8_is_an_error_naming_it(setup, tmp_path, capsys):
    demo, _ = setup
    lines = open(demo.train_list, "rb").read().splitlines(keepends=True)
    listfile = write(tmp_path / "train.txt", b"".join(lines[:2]) + b"id\xff\xfe0001 a.wav\n" + b"".join(lines[2:]))
    status = train(setup, tmp_path / "exp", train_list=listfile)
    one_line_error(capsys, status, "%s:3: not UTF-8 text (byte 0xff)" % listfile)


def test_a_path_list_line_that_is_not_utf8_is_an_error_naming_it(setup, tmp_path):
    demo, _ = setup
    listfile = write(tmp_path / "paths.txt", BOM + b"a.wav\n\n\x80b.wav\n")
    with pytest.raises(InputError) as error:
        read_path_list(listfile, demo.test_path, "--test_path", "cohort list")
    assert error.value.line == "%s:3: not UTF-8 text (byte 0x80); save the cohort list as UTF-8" % listfile


# -- test audio checked before the first epoch ------------------------------------------------

def bad_audio(path, kind):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "garbage":
        open(path, "wb").write(b"RIFF nonsense")
        return
    silence = numpy.zeros(0 if kind == "empty" else 16000, dtype=numpy.int16)
    if kind == "stereo":
        silence = numpy.stack([silence, silence], axis=1)
    soundfile.write(path, silence, 8000 if kind == "8k" else 16000, subtype="PCM_16")


def copy_with_a_bad_file(setup, tmp_path, kind):
    """A copy of the demo test set and its list, with a 5th trial (line 5) naming a bad file."""
    demo, _ = setup
    test_path = str(tmp_path / "test")
    shutil.copytree(demo.test_path, test_path)
    bad_audio(os.path.join(test_path, "bad", "x.wav"), kind)
    trials = demo_trials(setup)
    listfile = write(tmp_path / "t.txt", trials + ["0 %s bad/x.wav" % trials[0].split()[1]])
    return listfile, test_path, os.path.join(test_path, "bad", "x.wav")


PROBLEMS = [("8k", "sample rate is 8000 Hz"), ("stereo", "has 2 channels"), ("empty", "contains no audio samples"),
            ("garbage", "cannot read audio")]


@pytest.mark.parametrize("kind, problem", PROBLEMS)
def test_bad_test_audio_is_found_before_the_first_epoch(setup, tmp_path, capsys, kind, problem):
    listfile, test_path, bad = copy_with_a_bad_file(setup, tmp_path, kind)
    status = train(setup, tmp_path / "exp", test_list=listfile, test_path=test_path)
    one_line_error(capsys, status, "%s:5: %s: %s" % (listfile, bad, problem))
    assert nothing_trained(tmp_path / "exp")


@pytest.mark.parametrize("kind, problem", PROBLEMS)
def test_check_audio_names_the_list_line_and_file(setup, tmp_path, kind, problem):
    listfile, test_path, bad = copy_with_a_bad_file(setup, tmp_path, kind)
    test_list = TestList(listfile, test_path)  # reading the list does not open the audio
    with pytest.raises(InputError) as error:
        test_list.check_audio()
    assert error.value.line.startswith("%s:5: %s: %s" % (listfile, bad, problem))


def test_check_audio_reports_the_first_bad_file_in_list_order_and_reads_each_file_once(setup, tmp_path,
                                                                                       monkeypatch):
    demo, _ = setup
    test_path = str(tmp_path / "test")
    shutil.copytree(demo.test_path, test_path)
    trials = demo_trials(setup)
    bad_audio(os.path.join(test_path, "z", "first.wav"), "8k")
    bad_audio(os.path.join(test_path, "a", "second.wav"), "stereo")
    listfile = write(tmp_path / "t.txt", trials + ["0 z/first.wav a/second.wav", "1 a/second.wav z/first.wav"])
    from voxtrainer.reading import audio
    opened = []
    real_audio_info = audio.audio_info
    monkeypatch.setattr(audio, "audio_info", lambda path: opened.append(path) or real_audio_info(path))
    with pytest.raises(InputError, match="t.txt:5: .*first.wav: sample rate is 8000 Hz"):
        TestList(listfile, test_path).check_audio()
    assert len(opened) == len(set(opened))

    opened.clear()
    TestList(demo.test_list, demo.test_path).check_audio()
    assert sorted(opened) == sorted(os.path.join(demo.test_path, name) for name in TestList(
        demo.test_list, demo.test_path).files)


def test_check_audio_shows_a_progress_bar_only_for_long_lists(setup, capsys, monkeypatch):
    demo, _ = setup
    test_list = TestList(demo.test_list, demo.test_path)
    test_list.check_audio()
    assert "Checking test audio" not in capsys.readouterr().err
    monkeypatch.setattr(lists, "PROGRESS_MIN_FILES", 2)
    test_list.check_audio()
    assert "Checking test audio" in capsys.readouterr().err
    test_list.check_audio(progress=False)
    assert capsys.readouterr().err == ""


# -- float WAVs -------------------------------------------------------------------------------

@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_copies_of_the_test_files_score_identically(setup, tmp_path, subtype):
    demo, _ = setup
    float_path = tmp_path / "float"
    for name in TestList(demo.test_list, demo.test_path).files:
        samples, rate = soundfile.read(os.path.join(demo.test_path, name), dtype="int16")
        os.makedirs(os.path.dirname(float_path / name), exist_ok=True)
        soundfile.write(str(float_path / name), samples.astype(numpy.float64) / 32768, rate, subtype=subtype)
        assert soundfile.info(str(float_path / name)).subtype == subtype
    assert evaluate(setup, tmp_path / "int16", demo.test_list) == 0
    assert evaluate(setup, tmp_path / "float", demo.test_list, test_path=str(float_path)) == 0
    scores = "result/eval_scores.txt"
    assert (tmp_path / "float" / scores).read_bytes() == (tmp_path / "int16" / scores).read_bytes()
