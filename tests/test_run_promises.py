"""A training run's promises: every trained evaluation epoch ends with its scores.txt line and its
.eer whenever a kill comes; a resume that changes a setting of training is refused or warned about
naming the flag and both values; degenerate flags and fine-tuning options that cannot take effect
are one line, exit status 2."""

import os
import sys

import pytest

import trainSpeakerNet
from conftest import ROOT, assert_one_error_line, copy_run, train_killed_and_resumed, training_flags

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def flags(demo, save_path, *extra):
    return training_flags(demo, save_path, "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2",
                          *extra, max_frames=50)


def refused(capsys, argv, *needles):
    assert trainSpeakerNet.main(argv) == 2
    return assert_one_error_line(capsys.readouterr().err, *needles)


def score_lines(save_path):
    return [line for line in open(os.path.join(save_path, "result", "scores.txt")) if line.startswith("IT ")]


# -- an evaluation cut short by a kill ----------------------------------------------------------

@pytest.fixture
def slow_test_list(demo, tmp_path):
    """The demo test list's trials over COPIES links to each of its files: an evaluation that lasts
    long enough for a kill to land in it."""
    copies = 8
    root = tmp_path / "slow_test"
    trials = [line.split() for line in open(demo.test_list)]
    lines = []
    for copy in range(copies):
        for label, enrol, test in trials:
            for name in (enrol, test):
                link = root / str(copy) / name
                if not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(os.path.join(demo.test_path, name))
            lines.append("%s %d/%s %d/%s" % (label, copy, enrol, copy, test))
    (tmp_path / "slow_test_list.txt").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "slow_test_list.txt"), str(root)


def test_a_kill_during_an_epochs_evaluation_loses_neither_its_line_nor_its_eer(demo, slow_test_list, tmp_path):
    test_list, test_path = slow_test_list

    def command(save_path):
        return [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"),
                *flags(demo, save_path, "--max_epoch", "3", "--test_list", test_list, "--test_path", test_path)]

    def killed_inside_the_evaluation(save_path):
        assert (save_path / "model" / "model000000001.model").exists()
        assert not (save_path / "model" / "model000000001.eer").exists()

    resumed = train_killed_and_resumed(command, tmp_path / "a", tmp_path / "b", killed_after_epoch=1, last_epoch=3,
                                       kill_delay=0, after_kill=killed_inside_the_evaluation)
    assert "Epoch 1 was saved but its evaluation never finished" in resumed
    assert score_lines(tmp_path / "b") == score_lines(tmp_path / "a")
    assert [line.split(",")[0] for line in score_lines(tmp_path / "b")] == ["IT 1", "IT 2", "IT 3"]
    for epoch in (1, 2, 3):
        name = "model/model%09d.eer" % epoch
        assert (tmp_path / "b" / name).read_text() == (tmp_path / "a" / name).read_text()
    final = "model/model000000003.model"
    assert (tmp_path / "a" / final).read_bytes() == (tmp_path / "b" / final).read_bytes()
    import json
    history = json.load(open(tmp_path / "b" / "result" / "curves.json"))["history"]
    assert [record["epoch"] for record in history] == [1, 2, 3]


# -- resuming with other settings -------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(demo, tmp_path_factory):
    """A run of two saved epochs (Adam, steplr)."""
    save_path = tmp_path_factory.mktemp("trained")
    assert trainSpeakerNet.main(flags(demo, save_path, "--max_epoch", "2")) == 0
    return save_path


def as_saved_before_the_settings_table(run):
    """The newest .state rewritten as the trainer saved it before every setting of training was
    saved: its "run" entry held the network's and the loss head's settings only."""
    import torch
    path = run / "model" / "model000000002.state"
    state = torch.load(path, weights_only=True)
    old_identity = ("model", "encoder_type", "nOut", "trainfunc", "n_mels", "log_input", "protocol")
    state["run"] = {name: state["run"][name] for name in old_identity}
    torch.save(state, path)


@pytest.mark.parametrize("flag, value, old", [("--optimizer", "sgd", "adam"), ("--scheduler", "warmup_exp", "steplr")])
def test_resuming_with_another_optimizer_or_scheduler_is_refused_naming_both(demo, trained, tmp_path, capsys, flag,
                                                                              value, old):
    run = copy_run(trained, tmp_path / "run")
    refused(capsys, flags(demo, run, "--max_epoch", "3", flag, value), "cannot resume",
            "%s %s (the run has %s)" % (flag, value, old))


def test_a_state_saved_before_the_settings_table_refuses_another_optimizer_in_one_line(demo, trained, tmp_path,
                                                                                       capsys):
    run = copy_run(trained, tmp_path / "run")
    as_saved_before_the_settings_table(run)
    refused(capsys, flags(demo, run, "--max_epoch", "3", "--optimizer", "sgd"), "cannot resume",
            "saved optimizer state is not of this --optimizer (SGD)", "momentum")


def test_a_state_saved_before_the_settings_table_resumes_without_a_warning(demo, trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path / "run")
    as_saved_before_the_settings_table(run)
    assert trainSpeakerNet.main(flags(demo, run, "--max_epoch", "3")) == 0
    out, err = capsys.readouterr()
    assert "Resumed from" in out and "WARNING" not in err, err


@pytest.mark.parametrize("flag, value, old, effect", [
    ("--lr_decay", "0.5", "0.95", "the run goes on with 0.95, which its saved optimizer/scheduler state holds"),
    ("--weight_decay", "0.001", "None", "saved optimizer/scheduler state holds"),
    ("--margin", "0.3", "1", "in force from the resumed epoch on"),
    ("--batch_size", "2", "3", "in force from the resumed epoch on"),
    ("--dither", "1.0", "0.0", "in force from the resumed epoch on"),
])
def test_resuming_with_another_recipe_setting_warns_naming_the_flag_and_both_values(demo, trained, tmp_path, capsys,
                                                                                     flag, value, old, effect):
    run = copy_run(trained, tmp_path / "run")
    assert trainSpeakerNet.main(flags(demo, run, "--max_epoch", "3", flag, value)) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "resuming with" in line]
    assert len(warnings) == 1, err
    assert "resuming with %s %s (the run had %s)" % (flag, value, old) in warnings[0] and effect in warnings[0]


def test_every_setting_compared_on_resume_is_a_flag_of_the_trainer():
    from voxtrainer.cli.flags import build_parser
    from voxtrainer.training.resume_settings import RESUME_SETTINGS
    flags_of_the_trainer = {action.dest for action in build_parser()._actions}
    assert set(RESUME_SETTINGS) <= flags_of_the_trainer


# -- every flag at its boundaries -------------------------------------------------------------

@pytest.mark.parametrize("extra, needle", [
    (["--max_epoch", "0"], "--max_epoch: must be at least 1, not 0"),
    (["--max_epoch", "-1"], "--max_epoch: must be at least 1"),
    (["--max_epoch", "1.5"], "--max_epoch: expected a whole number"),
    (["--max_frames", "1000000000"], "--max_frames: must be at most 360000"),
    (["--eval_frames", "1000000000"], "--eval_frames: must be at most 360000"),
    (["--batch_size", "-1"], "--batch_size: must be at least 1"),
    (["--batch_size", "1000000000"], "lower --batch_size"),
    (["--max_seg_per_spk", "0"], "--max_seg_per_spk: must be at least 1"),
    (["--test_interval", "0"], "--test_interval: must be at least 1"),
    (["--nDataLoaderThread", "-1"], "--nDataLoaderThread: must be at least 0"),
    (["--lr", "inf"], "--lr: must be a finite number"),
    (["--lr", "-0.1"], "--lr: must be at least 0"),
    (["--lr", "1e300"], "--lr: must be within float32's range"),
    (["--lr_decay", "nan"], "--lr_decay: must be a finite number"),
    (["--weight_decay", "1e39"], "--weight_decay: must be within float32's range"),
    (["--weight_decay", "abc"], "--weight_decay: expected a number"),
    (["--hard_prob", "-0.1"], "--hard_prob: must be between 0 and 1"),
    (["--margin", "inf"], "--margin: must be a finite number"),
    (["--scale", "0"], "--scale: must be above 0, not 0"),
    (["--scale", "-5"], "--scale: must be at least 0"),
    (["--seed", "-1"], "--seed: must be at least 0"),
    (["--seed", "4294967296"], "--seed: must be at most 4294967295"),
    (["--nSpeakers", "0"], "--nSpeakers: must be at least 1"),
    (["--nPerSpeaker", "1"], "--nPerSpeaker 1: --trainfunc angleproto compares utterances of one speaker"),
    (["--nSpeakers", "1"], "--nPerSpeaker 1: --trainfunc angleproto"),
    (["--trainfunc", "aamsoftmax", "--nClasses", "1000000000000"], "out of memory: an allocation of"),
    (["--top_k", "0"], "--top_k: must be at least 1"),
    (["--dither", "-1"], "--dither: must be at least 0"),
    (["--momentum", "-1"], "--momentum: must be at least 0"),
    (["--margin_start_epoch", "-1"], "--margin_start_epoch: must be at least 0"),
    (["--margin_end_epoch", "0"], "--margin_end_epoch: must be at least 1"),
    (["--trainfunc", "aamsoftmax", "--nClasses", "6", "--margin_start_epoch", "3", "--margin_end_epoch", "2"],
     "--margin_start_epoch 3 --margin_end_epoch 2"),
    (["--subcenters", "0"], "--subcenters: must be at least 1"),
    (["--intertopk", "-1"], "--intertopk: must be at least 0"),
    (["--scheduler", "warmup_exp", "--final_lr", "0"], "--final_lr 0 must be above 0"),
    (["--warmup_epochs", "-1"], "--warmup_epochs: must be at least 0"),
    (["--lr_reference_batch", "-1"], "--lr_reference_batch: must be at least 0"),
    (["--average_last", "-1"], "--average_last -1: give the number of saved models"),
])
def test_a_flag_beyond_its_boundary_is_one_line_naming_it(demo, tmp_path, capsys, extra, needle):
    refused(capsys, flags(demo, tmp_path, *extra), needle)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("setting, needle", [
    ("max_epoch: 0", "max_epoch: must be at least 1"), ("max_epoch: '3'", "max_epoch: expected a whole number"),
    ("seed: null", "seed: expected a whole number"), ("lr: .inf", "lr: must be a finite number"),
    ("scale: 0", "scale: must be above 0"), ("max_frames: 1000000000", "max_frames: must be at most 360000"),
    ("lr: 1e400", "lr: must be a finite number"), ("lr: 'fast'", "lr: expected a number"),
])
def test_a_yaml_value_beyond_its_flags_boundary_is_one_line_naming_the_file_and_setting(demo, tmp_path, capsys,
                                                                                        setting, needle):
    config = tmp_path / "bad.yaml"
    config.write_text(setting + "\n")
    refused(capsys, flags(demo, tmp_path, "--config", str(config)), str(config), needle)


@pytest.mark.parametrize("setting, dest, value", [
    ("lr: 1e-3", "lr", 0.001),  # YAML 1.1 reads it as a string; it is the number the command line reads
    ("verify: [a.wav, b.wav]", "verify", ["a.wav", "b.wav"]),
])
def test_yaml_spellings_the_command_line_accepts_are_read_as_it_reads_them(tmp_path, setting, dest, value):
    config = tmp_path / "good.yaml"
    config.write_text(setting + "\n")
    assert getattr(trainSpeakerNet.parse_args(["--config", str(config)]), dest) == value


@pytest.mark.parametrize("extra", [
    ["--trainfunc", "triplet", "--hard_rank", "-1"],  # semi-hard mining, as the original
    ["--trainfunc", "triplet", "--hard_rank", "1000000"],  # clamped to the batch's negatives
    ["--max_seg_per_spk", "1000000000"],  # a cap: every utterance is used
    ["--test_interval", "1000000"],  # the last epoch is evaluated and saved whatever the interval
])
def test_extreme_values_with_a_documented_meaning_train_and_evaluate_the_last_epoch(demo, tmp_path, extra):
    assert trainSpeakerNet.main(flags(demo, tmp_path, *extra)) == 0
    assert (tmp_path / "model" / "model000000001.eer").exists()


# -- fine-tuning options that cannot take effect ------------------------------------------------

@pytest.fixture(scope="module")
def head_only_checkpoint(trained, tmp_path_factory):
    import torch
    state = torch.load(trained / "model" / "model000000001.model", weights_only=True)
    path = tmp_path_factory.mktemp("head_only") / "head_only.model"
    torch.save({name: value for name, value in state.items() if name.startswith("__L__.")}, path)
    return path


def test_freeze_epochs_beyond_the_last_epoch_is_refused(demo, trained, tmp_path, capsys):
    base = str(trained / "model" / "model000000001.model")
    refused(capsys, flags(demo, tmp_path, "--finetune", "--initial_model", base, "--freeze_epochs", "5", "--max_epoch",
                          "3"), "--freeze_epochs 5 is beyond --max_epoch 3")


def test_freezing_under_a_loss_without_weights_is_refused(demo, trained, tmp_path, capsys):
    base = str(trained / "model" / "model000000001.model")
    refused(capsys, flags(demo, tmp_path, "--finetune", "--initial_model", base, "--freeze_epochs", "1", "--trainfunc",
                          "proto"),
            "--freeze_epochs 1: --trainfunc proto has no weights of its own")


def test_finetuning_from_a_checkpoint_without_an_embedding_network_is_refused(demo, head_only_checkpoint, tmp_path,
                                                                              capsys):
    refused(capsys, flags(demo, tmp_path, "--finetune", "--initial_model", str(head_only_checkpoint)),
            str(head_only_checkpoint), "holds no embedding network (no __S__.* tensors, only a loss head)",
            "--finetune")


def test_a_kill_after_the_score_line_but_before_the_eer_evaluates_again_without_a_second_line(demo, trained,
                                                                                              tmp_path, capsys):
    run = copy_run(trained, tmp_path / "run")
    eer = (run / "model" / "model000000002.eer").read_text()
    os.remove(run / "model" / "model000000002.eer")
    assert trainSpeakerNet.main(flags(demo, run, "--max_epoch", "2")) == 0
    assert "Epoch 2 was saved but its evaluation never finished" in capsys.readouterr().out
    assert (run / "model" / "model000000002.eer").read_text() == eer
    assert [line.split(",")[0] for line in score_lines(run)] == ["IT 1", "IT 2"]


def test_a_state_saved_before_the_epochs_figures_still_gets_its_line_with_the_eer(demo, trained, tmp_path, capsys):
    import torch
    from voxtrainer.training.epoch_results import FIGURES_KEY
    run = copy_run(trained, tmp_path / "run")
    eer = float((run / "model" / "model000000002.eer").read_text())
    state_path = run / "model" / "model000000002.state"
    state = torch.load(state_path, weights_only=True)
    del state[FIGURES_KEY]
    torch.save(state, state_path)
    os.remove(run / "model" / "model000000002.eer")
    scores = run / "result" / "scores.txt"
    scores.write_text("".join(line for line in open(scores) if not line.startswith("IT 2,")))
    assert trainSpeakerNet.main(flags(demo, run, "--max_epoch", "2")) == 0
    assert score_lines(run)[-1] == "IT 2, VEER %2.4f\n" % eer
