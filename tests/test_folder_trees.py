"""dataprep.py --make_lists --from_folder over odd folder trees: names in other encodings, symbolic
links (to files, to folders, in loops, to nothing), one-file and empty speakers, hidden and non-audio
files. Each is listed as documented (voxtrainer/data/folder.py), warned about, or refused in one line
(exit status 2). Recordings are 16 kHz mono wavs, which are linked, not converted: no ffmpeg needed."""

import os

import pytest

from test_own_data import assert_bad_input, make_lists, read_lists, write_recording


def speakers(folder, names, per_speaker=2):
    for speaker in names:
        for utterance in range(per_speaker):
            write_recording(folder / speaker / f"u{utterance}", "wav16k", hash((speaker, utterance)) % 100)


def listed_speakers(out):
    train, test = read_lists(out)
    return {speaker for speaker, _ in train} | {path.split("/")[0] for trial in test for path in trial[1:]}


def listed_files(out):
    train, test = read_lists(out)
    return {path for _, path in train} | {path for trial in test for path in trial[1:]}


@pytest.fixture
def base(tmp_path):
    """Four ordinary speakers with two recordings each."""
    folder = tmp_path / "recordings"
    speakers(folder, ("spk0", "spk1", "spk2", "spk3"))
    return folder


def test_utf8_names_beyond_ascii_are_listed_as_utf8(base, tmp_path):
    speakers(base, ("zoë",))
    result = make_lists(base, tmp_path / "out", "--test_speakers", "2")
    assert result.returncode == 0, result.stderr
    assert "zoë" in listed_speakers(tmp_path / "out")
    (tmp_path / "out" / "train_list.txt").read_bytes().decode("utf-8")  # and the lists are UTF-8


def test_a_name_that_is_not_utf8_is_one_line_naming_its_bytes(base, tmp_path):
    speakers(base, ("renee",))
    os.rename(base / "renee", os.path.join(os.fsencode(base), b"ren\xe9e"))  # Latin-1, as an old system wrote it
    line = assert_bad_input(make_lists(base, tmp_path / "out"), "not UTF-8")
    assert "ren\\xe9e/u0.wav" in line
    assert not (tmp_path / "out" / "train_list.txt").exists()


def test_links_to_files_and_to_folders_are_followed(base, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    speakers(elsewhere, ("eve",))
    (base / "eve").symlink_to(elsewhere / "eve", target_is_directory=True)
    (base / "spk0" / "linked.wav").symlink_to(elsewhere / "eve" / "u0.wav")
    result = make_lists(base, tmp_path / "out", "--test_speakers", "2")
    assert result.returncode == 0, result.stderr
    assert {"eve/u0.wav", "eve/u1.wav", "spk0/linked.wav"} <= listed_files(tmp_path / "out")


def test_a_link_loop_and_a_second_link_to_a_folder_are_read_once_with_a_warning(base, tmp_path):
    (base / "spk1" / "again").symlink_to(base / "spk1", target_is_directory=True)  # a loop
    (base / "spk9").symlink_to(base / "spk2", target_is_directory=True)  # spk2 under a second name
    result = make_lists(base, tmp_path / "out", "--test_speakers", "2")
    assert result.returncode == 0, result.stderr
    assert "2 folder(s) skipped" in result.stderr and "spk1/again" in result.stderr and "spk9" in result.stderr
    assert listed_speakers(tmp_path / "out") == {"spk0", "spk1", "spk2", "spk3"}
    assert not any("again" in path for path in listed_files(tmp_path / "out"))


def test_links_to_nothing_are_one_line_naming_them(base, tmp_path):
    (base / "spk0" / "gone.wav").symlink_to(tmp_path / "no_such.wav")
    (base / "ghost").symlink_to(tmp_path / "no_such_folder", target_is_directory=True)
    line = assert_bad_input(make_lists(base, tmp_path / "out"), "2 symbolic link(s) to nothing")
    assert "spk0/gone.wav" in line and "ghost" in line


def test_one_file_and_empty_speakers_are_left_out_with_warnings(base, tmp_path):
    speakers(base, ("solo",), per_speaker=1)
    (base / "nobody").mkdir()
    (base / "notes_only").mkdir()
    (base / "notes_only" / "readme.txt").write_text("no audio")
    result = make_lists(base, tmp_path / "out", "--test_speakers", "2")
    assert result.returncode == 0, result.stderr
    assert "1 speaker(s) with a single recording left out of both lists" in result.stderr
    assert "2 speaker folder(s) without recordings ignored: nobody, notes_only" in result.stderr
    assert listed_speakers(tmp_path / "out") == {"spk0", "spk1", "spk2", "spk3"}


def test_hidden_and_non_audio_files_are_skipped(base, tmp_path):
    write_recording(base / "spk0" / ".hidden", "wav16k", 1)
    write_recording(base / ".trash" / "spk7" / "u0", "wav16k", 2)
    (base / "spk1" / "transcript.txt").write_text("hello")
    (base / "spk1" / "u0.wav.bak").write_bytes(b"old")
    result = make_lists(base, tmp_path / "out", "--test_speakers", "2")
    assert result.returncode == 0, result.stderr
    assert listed_files(tmp_path / "out") == {f"spk{s}/u{u}.wav" for s in range(4) for u in range(2)}
