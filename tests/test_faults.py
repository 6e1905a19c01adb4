"""Hostile input and faults: every bad flag, setting, checkpoint or folder is refused before any
work with one line naming it (exit status 2, no traceback); crashes, signals, full disks and a
second run on the same folder lose nothing."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import trainSpeakerNet
from conftest import ROOT, assert_one_error_line, copy_run, training_flags
from voxtrainer.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def flags(demo, save_path, *extra):
    return training_flags(demo, save_path, "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2",
                          *extra, max_frames=50)


def refused(capsys, argv, *needles):
    status = trainSpeakerNet.main(argv)
    assert status == 2
    return assert_one_error_line(capsys.readouterr().err, *needles)


def command(*argv):
    return [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"), *argv]


# -- flags and settings -------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value, needle", [
    ("--max_frames", "0", "--max_frames 0"), ("--eval_frames", "-1", "--eval_frames"), ("--lr", "nan", "--lr"),
    ("--nDataLoaderThread", "-1", "--nDataLoaderThread"), ("--batch_size", "0", "--batch_size"),
    ("--nOut", "0", "--nOut"), ("--test_interval", "0", "--test_interval"),
    ("--test_interval", "-1", "--test_interval"), ("--hard_prob", "1.5", "--hard_prob"),
    ("--max_frames", "1.5", "--max_frames"),
])
def test_out_of_range_flags_are_refused_naming_the_flag(demo, tmp_path, capsys, flag, value, needle):
    refused(capsys, flags(demo, tmp_path, flag, value), needle)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("setting, needle", [
    ("max_frames: 1.5", "max_frames: expected a whole number"), ("batch_size: [1, 2]", "batch_size"),
    ("mixedprec: 'false'", "mixedprec: expected true or false"), ("eval: 'no'", "eval: expected true or false"),
    ("device: gpu", "device: 'gpu' is not one of"), ("lr: .nan", "lr: must be a finite number"),
    ("nOut: 0", "nOut: must be at least 1"),
])
def test_yaml_values_are_held_to_the_command_lines_rules(demo, tmp_path, capsys, setting, needle):
    config = tmp_path / "bad.yaml"
    config.write_text(setting + "\n")
    refused(capsys, flags(demo, tmp_path, "--config", str(config)), str(config), needle)


def test_softmax_losses_refuse_fewer_classes_than_training_speakers_before_training(demo, tmp_path, capsys):
    refused(capsys, flags(demo, tmp_path, "--trainfunc", "aamsoftmax", "--nSpeakers", "4"),
            "--nClasses 4", "6 speakers")
    assert not (tmp_path / "model").exists()


def test_a_save_path_that_is_a_file_is_refused_before_any_work(demo, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    refused(capsys, flags(demo, blocker), "--save_path %s" % blocker)
    checkpoint = tmp_path / "random.model"
    torch.manual_seed(0)
    from SpeakerNet import SpeakerNet
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32).saveParameters(str(checkpoint))
    refused(capsys, ["--eval", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32",
                     "--initial_model", str(checkpoint), "--test_list", demo.test_list, "--test_path", demo.test_path,
                     "--save_path", str(blocker), "--nDataLoaderThread", "0"], "--save_path %s" % blocker)


def test_loader_processes_are_capped_at_the_cores_with_one_line(demo, tmp_path, capsys):
    assert trainSpeakerNet.main(flags(demo, tmp_path, "--nDataLoaderThread", "64")) == 0
    out, err = capsys.readouterr()
    assert sum("--nDataLoaderThread 64: this machine has" in line for line in out.splitlines()) == 1
    assert "Warning" not in err and "WARNING" not in err


# -- checkpoints and resuming -------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(demo, tmp_path_factory):
    """A run of two saved epochs."""
    save_path = tmp_path_factory.mktemp("trained")
    assert trainSpeakerNet.main(flags(demo, save_path, "--max_epoch", "2")) == 0
    return save_path


def test_eval_of_a_checkpoint_with_nan_weights_is_refused(demo, trained, tmp_path, capsys):
    state = torch.load(trained / "model" / "model000000002.model", weights_only=True)
    state["__S__.fc.weight"][0, 0] = float("nan")
    broken = tmp_path / "nan.model"
    torch.save(state, broken)
    refused(capsys, ["--eval", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32",
                     "--initial_model", str(broken), "--test_list", demo.test_list, "--test_path", demo.test_path,
                     "--save_path", str(tmp_path), "--nDataLoaderThread", "0"], str(broken), "NaN",
            "__S__.fc.weight")


def test_a_truncated_newest_checkpoint_is_set_aside_and_training_resumes_from_the_one_before(demo, trained,
                                                                                                tmp_path, capsys):
    run = copy_run(trained, tmp_path / "run")
    newest = run / "model" / "model000000002.model"
    newest.write_bytes(newest.read_bytes()[:1000])
    assert trainSpeakerNet.main(flags(demo, run, "--max_epoch", "2")) == 0
    out, err = capsys.readouterr()
    assert "model000000002.model: not a readable checkpoint" in err and "set aside" in err
    assert "Resumed from %s" % (run / "model" / "model000000001.model") in out
    assert (run / "model" / "model000000002.model.damaged").exists()
    assert torch.load(newest, weights_only=True)  # epoch 2 trained again and saved whole


def test_resuming_with_another_loss_is_refused_naming_both(demo, trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path / "run")
    # ge2e has the same parameters (w, b) as angleproto: only the saved run's identity tells them apart
    refused(capsys, flags(demo, run, "--max_epoch", "3", "--trainfunc", "ge2e"), "cannot resume",
            "--trainfunc ge2e (the run has angleproto)")


def test_resuming_with_a_new_lr_says_it_goes_on_with_the_saved_schedule(demo, trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path / "run")
    assert trainSpeakerNet.main(flags(demo, run, "--max_epoch", "3", "--lr", "0.01")) == 0
    err = capsys.readouterr().err
    assert "--lr 0.01 is not this run's initial LR 0.001" in err


def test_a_failing_evaluation_keeps_the_trained_epoch(demo, tmp_path, capsys, monkeypatch):
    import voxtrainer.scoring.evaluation

    def fail(*args, **kwargs):
        raise InputError("evaluation failed on purpose")
    monkeypatch.setattr(voxtrainer.scoring.evaluation, "evaluate_list", fail)
    refused(capsys, flags(demo, tmp_path), "evaluation failed on purpose")
    assert torch.load(tmp_path / "model" / "model000000001.model", weights_only=True)


# -- full disks, kills, signals, a second run ---------------------------------------------------

def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_is_one_line(demo, tmp_path, capsys, monkeypatch):
    assert trainSpeakerNet.main(flags(demo, tmp_path)) == 0
    first = (tmp_path / "model" / "model000000001.model").read_bytes()
    real_save = torch.save

    def save_until_the_disk_fills(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        with open(path, "r+b") as handle:
            handle.truncate(100)  # as far as it got
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    line = refused(capsys, flags(demo, tmp_path, "--max_epoch", "2"), "cannot write",
                   str(tmp_path / "model" / "model000000002"), "the previous file, if any, is unchanged")
    assert "unexpected pos" in line or "disk is full" in line
    assert (tmp_path / "model" / "model000000001.model").read_bytes() == first
    assert not (tmp_path / "model" / "model000000002.model").exists()
    assert not [name for name in os.listdir(tmp_path / "model") if ".tmp" in name]


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs, where the machine lets us mount one (as root on Linux): room for one epoch's
    checkpoint and training state (17 MB with --nOut 32), not for two."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_really_full_disk_is_one_line_and_the_previous_checkpoint_survives(demo, small_disk, capsys):
    save_path = small_disk / "run"
    status = trainSpeakerNet.main(flags(demo, save_path, "--max_epoch", "2"))
    err = capsys.readouterr().err
    assert status == 2
    assert_one_error_line(err, "cannot write", "model000000002")
    saved = torch.load(save_path / "model" / "model000000001.model", weights_only=True)
    assert all(torch.isfinite(value.float()).all() for value in saved.values())
    assert not [name for name in os.listdir(save_path / "model") if ".tmp" in name]


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def default_interrupt_handling():
    # A shell starts background jobs with SIGINT ignored, and Python then keeps ignoring it: a suite
    # run that way must still give the trainer the Ctrl-C of a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_training(demo, save_path, *extra):
    return subprocess.Popen(command(*flags(demo, save_path, "--max_epoch", "50", *extra)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            preexec_fn=default_interrupt_handling)


def wait_for_line(process, needle, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if needle in line:
            return
        assert line or process.poll() is None, "exited before %r" % needle
    raise AssertionError("no %r within %d s" % (needle, timeout))


def test_sigterm_mid_epoch_stops_like_ctrl_c_and_the_workers_are_gone_within_a_second(demo, tmp_path):
    process = start_training(demo, tmp_path, "--nDataLoaderThread", "2", "--test_interval", "1")
    wait_for_line(process, "2 Training")  # epoch 1 was saved
    time.sleep(0.2)
    workers = children_of(process.pid)
    assert workers
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # splitlines also splits at a progress bar's carriage returns
    assert last.startswith("interrupted; the last saved checkpoint is intact (")
    named = last.split("(", 1)[1].split(")", 1)[0]
    assert torch.load(named, weights_only=True)
    deadline = time.time() + 1
    while time.time() < deadline and any(os.path.exists("/proc/%d" % pid) for pid in workers):
        time.sleep(0.05)
    assert not any(os.path.exists("/proc/%d" % pid) for pid in workers)


def test_an_interrupt_before_any_checkpoint_does_not_claim_one_is_intact(demo, tmp_path):
    process = start_training(demo, tmp_path)
    wait_for_line(process, "1 Training")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted before any checkpoint was saved"


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_lives_and_a_dead_ones_lock_is_taken_over(
        demo, tmp_path, capsys):
    first = start_training(demo, tmp_path)
    try:
        wait_for_line(first, "1 Training")
        line = refused(capsys, flags(demo, tmp_path), "--save_path %s is in use by another training run" % tmp_path)
        assert "pid %d" % first.pid in line
    finally:
        first.kill()
        first.communicate()
    assert trainSpeakerNet.main(flags(demo, tmp_path, "--max_epoch", "1")) == 0


def test_temporary_files_of_killed_writers_are_removed_on_the_next_start(demo, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "model").mkdir(parents=True)
    stale = tmp_path / "model" / ("model000000001.model.tmp%d" % dead.pid)
    stale.write_bytes(b"half a checkpoint")
    alive = tmp_path / "model" / ("notes.tmp%d" % os.getpid())
    alive.write_bytes(b"being written")
    assert trainSpeakerNet.main(flags(demo, tmp_path)) == 0
    assert not stale.exists() and alive.exists()


def test_an_evaluation_on_a_full_disk_keeps_the_previous_score_file_whole(demo, trained, small_disk, capsys):
    argv = ["--eval", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--initial_model",
            str(trained / "model" / "model000000002.model"), "--test_list", demo.test_list, "--test_path",
            demo.test_path, "--save_path", str(small_disk / "eval"), "--nDataLoaderThread", "0",
            "--eval_frames", "50"]
    assert trainSpeakerNet.main(argv) == 0
    scores = small_disk / "eval" / "result" / "eval_scores.txt"
    complete = scores.read_bytes()
    with open(small_disk / "filler", "wb") as handle:  # leave a few hundred bytes free
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        handle.write(b"\0" * (free - 300))
    capsys.readouterr()
    assert trainSpeakerNet.main(argv) == 2
    assert_one_error_line(capsys.readouterr().err, "cannot write", "eval_scores.txt")
    assert scores.read_bytes() == complete
