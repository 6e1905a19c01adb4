"""The training pipeline: seed flags, sampler semantics, resume, bad input, every loss and model."""

import os
import subprocess
import sys

import numpy
import pytest
import soundfile

import trainSpeakerNet
from voxtrainer.cli.flags import parse_args
from voxtrainer.cli.build import resolve_group_sizes
from conftest import ROOT, train_killed_and_resumed, training_flags
from voxtrainer.reading.datasets import SpeakerBatchSampler
from voxtrainer.errors import InputError
from voxtrainer.plugins import load_plugin

LOSSES = ["softmax", "amsoftmax", "aamsoftmax", "ge2e", "proto", "triplet", "contrastive", "angleproto"]


def train(demo, save_path, *extra):
    return trainSpeakerNet.main(training_flags(demo, save_path, *extra))


# -- flags ------------------------------------------------------------------------------------

def test_seed_defaults_are_kept():
    args = parse_args([])
    assert (args.max_frames, args.batch_size, args.max_seg_per_spk, args.nDataLoaderThread) == (200, 200, 100, 5)
    assert (args.test_interval, args.max_epoch, args.optimizer, args.lr, args.lr_decay) == (10, 500, "adam", 0.001, 0.95)
    assert (args.hard_prob, args.hard_rank, args.margin, args.scale) == (0.5, 10, 1, 15)
    assert (args.save_path, args.train_path, args.test_path, args.encoder_type, args.nOut) == (
        "data/exp1", "voxceleb2", "voxceleb1", "SAP", 512)
    assert args.eval_frames == 200 and args.eval is False


def test_seed_readme_spelling_encoder_sets_encoder_type():
    assert parse_args(["--encoder", "TAP"]).encoder_type == "TAP"


def test_config_file_sets_flags_and_the_command_line_wins(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: VGGVox\nencoder: MAX\nlr: 0.01\nmax_frames: 120\n")
    args = parse_args(["--config", str(config), "--lr", "0.5"])
    assert (args.model, args.encoder_type, args.lr, args.max_frames, args.eval_frames) == ("VGGVox", "MAX", 0.5, 120, 120)


def test_config_file_with_an_unknown_setting_is_an_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("modle: VGGVox\n")
    with pytest.raises(InputError, match="unknown setting.*modle"):
        parse_args(["--config", str(config)])


@pytest.mark.parametrize("flags, trainfunc, expected", [
    ([], "softmax", (5994, 1)),
    (["--nSpeakers", "12"], "softmax", (12, 1)),
    (["--nSpeakers", "3"], "angleproto", (3, 3)),
    ([], "angleproto", (5994, 2)),
    (["--nSpeakers", "3", "--nPerSpeaker", "4", "--nClasses", "7"], "ge2e", (7, 4)),
    (["--nSpeakers", "5"], "triplet", (5, 2)),
])
def test_nSpeakers_is_the_class_count_or_the_utterances_per_speaker(flags, trainfunc, expected):
    loss_class = load_plugin("loss", trainfunc)
    assert resolve_group_sizes(parse_args(flags), loss_class) == expected


# -- sampler ----------------------------------------------------------------------------------

def sampler_labels():
    # speaker s has 3 + 2*s utterances, interleaved as a real list would be
    return [s for s in range(8) for _ in range(3 + 2 * s)]


def test_sampler_groups_hold_one_speaker_and_at_most_max_seg_per_spk_rounded_down():
    labels = sampler_labels()
    sampler = SpeakerBatchSampler(labels, group_size=2, max_seg_per_spk=7, batch_size=1)
    groups = [group for batch in sampler for group in batch]
    assert all(len(group.utterances) == 2 for group in groups)
    assert all({labels[i] for i in group.utterances} == {group.label} for group in groups)
    per_speaker = numpy.bincount([group.label for group in groups], minlength=8) * 2
    assert list(per_speaker) == [min(3 + 2 * s, 7) // 2 * 2 for s in range(8)]
    used = [i for group in groups for i in group.utterances]
    assert len(used) == len(set(used))


def test_sampler_batches_are_full_and_never_repeat_a_speaker():
    sampler = SpeakerBatchSampler(sampler_labels(), group_size=2, max_seg_per_spk=100, batch_size=5)
    batches = list(sampler)
    assert batches and all(len(batch) == 5 for batch in batches)
    assert all(len({group.label for group in batch}) == 5 for batch in batches)


def test_sampler_is_deterministic_per_seed_and_epoch():
    def draw(seed, epoch):
        sampler = SpeakerBatchSampler(sampler_labels(), 2, 100, 4, seed=seed)
        sampler.set_epoch(epoch)
        return [[tuple(g) for g in batch] for batch in sampler]
    assert draw(1, 3) == draw(1, 3)
    assert draw(1, 3) != draw(1, 4) and draw(1, 3) != draw(2, 3)


def test_sampler_shards_give_ranks_disjoint_groups_and_equal_step_counts():
    shards = [list(SpeakerBatchSampler(sampler_labels(), 2, 100, 2, seed=5, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(shard) for shard in shards}) == 1 and len(shards[0]) > 0
    utterances = [i for shard in shards for batch in shard for group in batch for i in group.utterances]
    assert len(utterances) == len(set(utterances))


def test_a_speaker_with_fewer_utterances_than_nPerSpeaker_is_an_error():
    with pytest.raises(InputError, match="fewer than 4 utterances"):
        SpeakerBatchSampler([0, 0, 0, 1, 1, 1, 1], group_size=4, max_seg_per_spk=100, batch_size=1)


# -- training runs ----------------------------------------------------------------------------

@pytest.mark.parametrize("trainfunc", LOSSES)
def test_one_epoch_trains_evaluates_and_saves_for_every_loss(demo, tmp_path, trainfunc):
    assert train(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", trainfunc, "--nSpeakers", "6"
                 if "softmax" in trainfunc else "2") == 0
    assert os.path.isfile(tmp_path / "model" / "model000000001.model")
    assert float(open(tmp_path / "model" / "model000000001.eer").read()) >= 0
    assert "VEER" in open(tmp_path / "result" / "scores.txt").read().splitlines()[-1]


@pytest.mark.parametrize("model, encoder", [("ResNetSE34", "SAP"), ("VGGVox", "TAP"), ("VGGVox", "MAX")])
def test_one_epoch_trains_every_model(demo, tmp_path, model, encoder):
    assert train(demo, tmp_path, "--model", model, "--encoder", encoder, "--trainfunc", "amsoftmax",
                 "--nSpeakers", "6", "--optimizer", "sgd") == 0
    assert os.path.isfile(tmp_path / "model" / "model000000001.model")


def test_seed_readme_training_commands_run_as_written(demo, tmp_path):
    # The README's two commands, with paths pointed at the demo set and a small run.
    small = ["--max_epoch", "1", "--nOut", "32", "--nDataLoaderThread", "0", "--max_frames", "100"]
    paths = ["--train_list", demo.train_list, "--test_list", demo.test_list, "--train_path", demo.train_path,
             "--test_path", demo.test_path]
    assert trainSpeakerNet.main(["--model", "ResNetSE34", "--encoder", "SAP", "--trainfunc", "amsoftmax",
                                 "--optimizer", "adam", "--save_path", str(tmp_path / "a"), "--batch_size", "4",
                                 "--max_frames", "200", "--scale", "30", "--margin", "0.3", *paths, *small]) == 0
    assert trainSpeakerNet.main(["--model", "ResNetSE34L", "--trainfunc", "angleproto", "--batch_size", "3",
                                 "--nSpeakers", "2", *paths, "--save_path", str(tmp_path / "b"), *small]) == 0


def command(demo, save_path, *extra):
    return [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"), "--model", "ResNetSE34L",
            "--trainfunc", "angleproto", *training_flags(demo, save_path, "--max_epoch", "4", "--nSpeakers", "2", *extra)]


def test_training_killed_mid_epoch_resumes_and_ends_with_the_same_model(demo, tmp_path):
    train_killed_and_resumed(lambda save_path: command(demo, save_path), tmp_path / "a", tmp_path / "b")
    final = "model/model000000004.model"
    assert (tmp_path / "a" / final).read_bytes() == (tmp_path / "b" / final).read_bytes()
    lrs = [line.split(",")[1] for line in open(tmp_path / "b" / "result" / "scores.txt") if line.startswith("IT 4")]
    assert lrs == [" LR %f" % (0.001 * 0.95 ** 3)]


def test_initial_model_starts_from_given_weights(demo, tmp_path):
    assert train(demo, tmp_path / "a", "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2") == 0
    start = str(tmp_path / "a" / "model" / "model000000001.model")
    assert train(demo, tmp_path / "b", "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2",
                 "--initial_model", start, "--lr", "0") == 0
    assert (tmp_path / "b" / "model" / "model000000001.model").read_bytes() != b""
    import torch
    before, after = torch.load(start, weights_only=True), torch.load(
        tmp_path / "b" / "model" / "model000000001.model", weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.endswith(("running_mean", "running_var",
                                                                                   "num_batches_tracked")))


def test_the_run_saves_its_resolved_settings_as_a_config_that_reproduces_them(demo, tmp_path):
    flags = training_flags(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2",
                       "--lr", "0.002")
    assert trainSpeakerNet.main(flags) == 0
    saved = tmp_path / "config.yaml"
    assert vars(parse_args(["--config", str(saved)])) == dict(
        vars(parse_args(flags)), config=str(saved))


def test_what_the_trainer_prints_is_also_logged_in_the_result_folder(demo, tmp_path, capsys):
    assert train(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2") == 0
    printed = capsys.readouterr().out
    logged = open(tmp_path / "result" / "train.log").read()
    for line in printed.splitlines():
        if "VEER" in line or "Training ResNetSE34L" in line or line.startswith("MinDCF"):
            assert line in logged


def test_the_run_ends_with_one_line_of_untrained_and_final_eer_and_minutes(demo, tmp_path, capsys):
    assert train(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2",
                 "--eval_untrained") == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    final_eer = float(open(tmp_path / "model" / "model000000001.eer").read())
    untrained = [line for line in open(tmp_path / "result" / "scores.txt") if line.startswith("IT 0, untrained")][0]
    assert last.startswith("Final test EER %2.4f%% (untrained model: %s%%); 1 epoch(s) trained in "
                           % (final_eer, untrained.split("VEER ")[1].strip()))
    assert last.endswith(" minutes") and float(last.split(" in ")[1].split()[0]) >= 0


def test_warnings_go_to_stderr(demo, tmp_path, capsys):
    assert train(demo, tmp_path / "a", "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2") == 0
    capsys.readouterr()
    start = str(tmp_path / "a" / "model" / "model000000001.model")
    assert trainSpeakerNet.main(["--eval", "--model", "ResNetSE34L", "--trainfunc", "softmax", "--nOut", "32",
                                 "--initial_model", start, "--test_list", demo.test_list, "--test_path",
                                 demo.test_path, "--save_path", str(tmp_path / "b"), "--nDataLoaderThread", "0",
                                 "--eval_frames", "100"]) == 0
    out, err = capsys.readouterr()
    assert "loss-head parameters do not fit" in err and "loss-head" not in out


# -- bad input --------------------------------------------------------------------------------

def write(path, text):
    path.write_text(text)
    return str(path)


def bad_wav(path, **kwargs):
    data = numpy.zeros(kwargs.pop("n", 16000), dtype=numpy.int16)
    if kwargs.get("channels", 1) == 2:
        data = numpy.stack([data, data], axis=1)
    soundfile.write(str(path), data, kwargs.get("rate", 16000), subtype="PCM_16")


def one_line_error(capsys, status, *needles):
    assert status != 0
    err = capsys.readouterr().err.split("\r")[-1].strip()  # after any cleared progress bar
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err


def with_train_list(demo, tmp_path, lines):
    return ["--train_list", write(tmp_path / "train.txt", lines), "--model", "ResNetSE34L", "--trainfunc",
            "angleproto", "--nSpeakers", "2"]


def test_list_line_with_wrong_field_count(demo, tmp_path, capsys):
    status = train(demo, tmp_path, *with_train_list(demo, tmp_path, "id0 a.wav\nid0 b.wav extra\n"))
    one_line_error(capsys, status, "train.txt:2", "expected 2 fields")


def test_missing_audio_files_are_listed_up_front(demo, tmp_path, capsys):
    status = train(demo, tmp_path, *with_train_list(demo, tmp_path, "id0 none1.wav\nid0 none2.wav\n"))
    one_line_error(capsys, status, "2 listed audio file(s) not found", "none1.wav (line 1)", "--train_path")


def test_empty_train_list(demo, tmp_path, capsys):
    one_line_error(capsys, train(demo, tmp_path, *with_train_list(demo, tmp_path, "\n")), "train list is empty")


@pytest.mark.parametrize("kind, needle", [("rate", "sample rate is 8000 Hz"), ("channels", "2 channels"),
                                          ("empty", "no audio samples"), ("garbage", "cannot read audio")])
@pytest.mark.parametrize("workers", ["0", "2"])
def test_bad_audio_in_the_train_list_is_one_line_even_from_worker_processes(demo, tmp_path, capsys, kind,
                                                                           needle, workers):
    lines = "".join("id%d s%d_%d.wav\n" % (s, s, u) for s in range(3) for u in range(2))
    for s in range(3):
        for u in range(2):
            bad_wav(tmp_path / ("s%d_%d.wav" % (s, u)))
    bad = tmp_path / "s1_0.wav"
    {"rate": lambda: bad_wav(bad, rate=8000), "channels": lambda: bad_wav(bad, channels=2),
     "empty": lambda: bad_wav(bad, n=0), "garbage": lambda: bad.write_bytes(b"RIFF nonsense")}[kind]()
    status = train(demo, tmp_path, *with_train_list(demo, tmp_path, lines), "--train_path", str(tmp_path),
                   "--nDataLoaderThread", workers, "--save_path", str(tmp_path / "exp"))
    one_line_error(capsys, status, "s1_0.wav", needle)


def test_speaker_with_too_few_utterances(demo, tmp_path, capsys):
    status = train(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "ge2e", "--nPerSpeaker", "9")
    one_line_error(capsys, status, "fewer than 9 utterances", "--nPerSpeaker")


@pytest.mark.parametrize("flag, value", [("--model", "ResNet99"), ("--trainfunc", "arcface"),
                                         ("--optimizer", "lamb"), ("--scheduler", "cosine")])
def test_unknown_names_list_the_valid_ones(demo, tmp_path, capsys, flag, value):
    flags = {"--model": "ResNetSE34L", "--trainfunc": "angleproto"}
    flags[flag] = value
    argv = [a for item in flags.items() for a in item] + ([flag, value] if flag not in ("--model", "--trainfunc") else [])
    status = train(demo, tmp_path, *argv, "--nSpeakers", "2")
    one_line_error(capsys, status, "unknown %s %r" % (flag, value), "valid names are")


def test_test_list_naming_files_outside_test_path(demo, tmp_path, capsys):
    status = train(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2",
                   "--test_list", write(tmp_path / "t.txt", "1 id1/a.wav id2/b.wav\n"))
    one_line_error(capsys, status, "t.txt", "id1/a.wav (line 1)", "--test_path")


def test_non_finite_loss_stops_with_the_last_good_checkpoint_kept(demo, tmp_path, capsys, monkeypatch):
    assert train(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2") == 0
    good = (tmp_path / "model" / "model000000001.model").read_bytes()
    import torch
    from loss import proto
    monkeypatch.setattr(proto.LossFunction, "forward", lambda self, x, label: (x.sum() * float("nan"), 0.0))
    status = train(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "proto", "--nSpeakers", "2",
                   "--max_epoch", "2")
    one_line_error(capsys, status, "loss became nan at epoch 2", "model000000001.model")
    assert (tmp_path / "model" / "model000000001.model").read_bytes() == good
    assert not (tmp_path / "model" / "model000000002.model").exists()
    assert torch.load(tmp_path / "model" / "model000000001.model", weights_only=True)


def test_cli_exit_status_and_one_line_for_bad_input(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"), "--model", "Nope",
                             "--trainfunc", "angleproto"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown --model 'Nope'") and "\n" not in result.stderr.strip()
