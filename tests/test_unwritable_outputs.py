"""Every output path that cannot be written (--export_out, --extract_out, --verify_list's results,
--eval --calibrate's calibration, --save_path): one line naming the path, exit status 2; --extract
checks its output before embedding anything."""

import os

import pytest
import torch

import trainSpeakerNet
from SpeakerNet import SpeakerNet
from conftest import assert_one_error_line

BLOCKERS = ("under_a_file", "a_folder")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_set):
    root = tmp_path_factory.mktemp("unwritable")
    torch.manual_seed(0)
    checkpoint = str(root / "random.model")
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32).saveParameters(checkpoint)
    return demo_set(), checkpoint


def unwritable(tmp_path, blocker, name):
    """A path no file can be written at: below a regular file, or an existing folder."""
    if blocker == "under_a_file":
        (tmp_path / "a_file").write_text("in the way\n")
        return str(tmp_path / "a_file" / name)
    (tmp_path / name).mkdir()
    return str(tmp_path / name)


def run(demo, checkpoint, save_path, *extra):
    return trainSpeakerNet.main([
        "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--eval_frames", "50",
        "--initial_model", checkpoint, "--test_list", demo.test_list, "--test_path", demo.test_path,
        "--save_path", str(save_path), "--nDataLoaderThread", "0", *extra])


def refused(capsys, status, path):
    assert status == 2
    return assert_one_error_line(capsys.readouterr().err, path)


@pytest.mark.parametrize("blocker", BLOCKERS)
def test_an_extract_out_that_cannot_be_written_is_named_before_any_embedding(
        setup, tmp_path, capsys, blocker, monkeypatch):
    demo, checkpoint = setup
    out = unwritable(tmp_path, blocker, "out.npz")
    embedded = []
    monkeypatch.setattr(SpeakerNet, "embed_files", lambda *args, **kwargs: embedded.append(1))
    listfile = tmp_path / "paths.txt"
    listfile.write_text(open(demo.test_list).readline().split()[1] + "\n")
    status = run(demo, checkpoint, tmp_path / "run", "--extract", "--extract_list", str(listfile),
                 "--extract_out", out)
    refused(capsys, status, out)
    assert not embedded


@pytest.mark.parametrize("blocker", BLOCKERS)
@pytest.mark.parametrize("fmt", ("torchscript",))
def test_an_export_out_that_cannot_be_written_is_named(setup, tmp_path, capsys, blocker, fmt):
    demo, checkpoint = setup
    out = unwritable(tmp_path, blocker, "model.pt")
    refused(capsys, run(demo, checkpoint, tmp_path / "run", "--export", fmt, "--export_out", out), out)


@pytest.mark.parametrize("blocker", BLOCKERS)
def test_a_save_path_that_cannot_be_written_is_named_for_every_mode(setup, tmp_path, capsys, blocker):
    demo, checkpoint = setup
    save_path = unwritable(tmp_path, blocker, "run")
    if blocker == "a_folder":  # a folder is a save path; its result folder cannot be one
        (tmp_path / "run" / "result").write_text("in the way\n")
    pairs = tmp_path / "pairs.txt"
    first = open(demo.test_list).readline().split()
    pairs.write_text("%s %s\n" % (first[1], first[2]))
    for mode in (["--eval"], ["--verify_list", str(pairs)], []):
        extra = ["--train_list", demo.train_list, "--train_path", demo.train_path, "--max_frames", "50",
                 "--nSpeakers", "2", "--batch_size", "2", "--max_epoch", "1"] if not mode else mode
        refused(capsys, run(demo, checkpoint, save_path, *extra), save_path)


def test_a_calibration_that_cannot_be_written_is_named(setup, tmp_path, capsys):
    demo, checkpoint = setup
    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / "random.model"
    model.write_bytes(open(checkpoint, "rb").read())
    (folder / "random.model.calibration.json").mkdir()  # a folder where the calibration goes
    status = run(demo, str(model), tmp_path / "run", "--eval", "--calibrate")
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, "random.model.calibration.json")
