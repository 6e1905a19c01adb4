"""tools/compare_original.py: its data and commands; where a git clone of the original is named by
$VOXCELEB_TRAINER_GIT (a developer's machine), a --quick run against an export of the seed commit. Speeds are
never asserted: they depend on the machine and its load."""

import json
import os
import subprocess

import pytest
import soundfile
import torch

import tools.compare_original as compare
from voxtrainer.network import SpeakerNet

MIRROR = os.environ.get("VOXCELEB_TRAINER_GIT", "")
SEED_COMMIT = "b288f2a"


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory):
    return compare.make_data(str(tmp_path_factory.mktemp("data")), compare.QUICK)


def read_trials(path):
    with open(path) as handle:
        return [line.split() for line in handle]


def test_data_are_the_promised_shape(quick_data):
    size = compare.QUICK
    trials = read_trials(quick_data["test_list"])
    assert len(trials) == size["trials"] and sum(t[0] == "1" for t in trials) == size["trials"] // 2
    files = {name for _, enrol, test in trials for name in (enrol, test)}
    for name in files:
        info = soundfile.info(os.path.join(quick_data["test_path"], name))
        assert info.samplerate == 16000 and info.subtype == "PCM_16" and 4.0 <= info.duration <= 6.0
    validation = read_trials(quick_data["val_list"])
    assert len(validation) == size["val_trials"] and sum(t[0] == "1" for t in validation) == size["val_trials"] // 2
    with open(quick_data["train_list"]) as handle:
        speakers = [line.split()[0] for line in handle]
    assert len(speakers) == 2 * size["train_speakers"] and len(set(speakers)) == size["train_speakers"]
    # the checkpoint is in the original format: plain state_dict, loadable strictly by the project
    state = torch.load(quick_data["checkpoint"], weights_only=True)
    assert "__S__.torchfb.mel_scale.fb" in state and "__L__.w" in state
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=512).loadParameters(quick_data["checkpoint"])


def test_data_are_deterministic(quick_data, tmp_path):
    again = compare.make_data(str(tmp_path), compare.QUICK)
    assert read_trials(again["test_list"]) == read_trials(quick_data["test_list"])
    first = read_trials(quick_data["test_list"])[0][1]
    with open(os.path.join(quick_data["test_path"], first), "rb") as a, \
            open(os.path.join(again["test_path"], first), "rb") as b:
        assert a.read() == b.read()


def test_both_programs_get_the_same_flags(quick_data):
    for case in compare.TARGETS:
        args = compare.flags(case, quick_data, compare.QUICK, "/tmp/out")
        original, original_cwd = compare.command("original", "/somewhere/orig", args)
        project, project_cwd = compare.command("project", "/somewhere/orig", args)
        assert original[1:4] == [os.path.abspath(compare.__file__), "--run-original", "/somewhere/orig"]
        assert original[4:] == project[2:] == args and original_cwd == "/somewhere/orig"
        assert project[1] == os.path.join(compare.ROOT, "trainSpeakerNet.py") and project_cwd == compare.ROOT
        assert args[args.index("--model") + 1] == "ResNetSE34L" and "--nDataLoaderThread" not in args
    eval_args = compare.flags("eval", quick_data, compare.QUICK, "/tmp/out")
    assert "--eval" in eval_args and eval_args[eval_args.index("--max_frames") + 1] == "300"
    assert eval_args[eval_args.index("--initial_model") + 1] == quick_data["checkpoint"]
    epoch_args = compare.flags("epoch", quick_data, compare.FULL, "/tmp/out")
    for flag, value in (("--batch_size", "32"), ("--nSpeakers", "2"), ("--max_frames", "200"),
                        ("--max_epoch", "1"), ("--test_interval", "1"), ("--trainfunc", "angleproto")):
        assert epoch_args[epoch_args.index(flag) + 1] == value
    assert epoch_args[epoch_args.index("--test_list") + 1] == quick_data["val_list"]


def test_precision_at_k_counts_targets_among_the_k_highest():
    output, target = torch.randn(12, 12, generator=torch.Generator().manual_seed(0)), torch.arange(12)
    ranks = [int((row > row[t]).sum()) for row, t in zip(output, target.tolist())]
    expected = [100.0 * sum(rank < k for rank in ranks) / 12 for k in (1, 5)]
    top1, top5 = compare.precision_at_k(output, target, (1, 5))
    assert top1.shape == top5.shape == (1,)
    assert [top1.item(), top5.item()] == pytest.approx(expected)


def test_pairwise_distance_2020_reduces_over_dimension_1():
    x, y = torch.randn(10, 512), torch.randn(7, 512)
    assert torch.allclose(compare.pairwise_distance_2020(x[:7], y), torch.nn.functional.pairwise_distance(x[:7], y))
    # the original's trial score: 10 enrol crops against 10 test crops -> a 10 x 10 matrix of crop pairs
    crops = compare.pairwise_distance_2020(x.unsqueeze(-1).expand(-1, -1, 10),
                                           x.flip(0).unsqueeze(-1).expand(-1, -1, 10).transpose(0, 2))
    assert crops.shape == (10, 10)
    assert torch.allclose(crops[2, 3], (x[2] - x.flip(0)[3] + 1e-6).norm())


@pytest.mark.skipif(not os.path.isdir(MIRROR), reason="set VOXCELEB_TRAINER_GIT to a git clone of clovaai/voxceleb_trainer")
def test_quick_comparison_against_the_seed_commit(tmp_path, capsys):
    original = tmp_path / "original"
    original.mkdir()
    archive = subprocess.run(["git", "-C", MIRROR, "archive", SEED_COMMIT], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(original)], input=archive, check=True)
    status = compare.main(["--original", str(original), "--quick", "--workdir", str(tmp_path / "work")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    runs = [line for line in lines if line["measurement"] == "run"]
    assert {(r["case"], r["side"]) for r in runs} == {(c, s) for c in compare.TARGETS for s in compare.SIDES}
    for run in runs:
        assert run["rc"] == 0, run.get("stderr_tail")
        assert run["wall_s"] > 0 and run["cpu_s"] > 0 and run["peak_rss_mb"] > 0
    eers = {r["side"]: r["eer"] for r in runs if r["case"] == "eval"}
    assert all(isinstance(eer, float) for eer in eers.values()), eers
    assert all(isinstance(r["veer"], float) for r in runs if r["case"] == "epoch")
    assert [r["torchaudio"] for r in runs if r["side"] == "original"][0]
    eval_pair = [line for line in lines if line["measurement"] == "pair" and line["case"] == "eval"][0]
    assert eval_pair["max_abs_score_diff"] < 1e-4  # same checkpoint, same audio: the same trial scores
    summary = lines[-1]
    assert summary["measurement"] == "summary" and summary["runs_ok"] and summary["eers_match"]
    assert {"eval_ratio", "epoch_ratio", "eval_met", "epoch_met"} <= set(summary) and status == 0


def test_the_gpu_size_trains_two_epochs_of_the_seeds_batch_for_both_programs():
    data = dict(test_path="t", test_list="l", val_list="v", train_list="tl", train_path="tp", checkpoint="c")
    argv = compare.flags("epoch", data, compare.GPU, "out")
    assert argv[argv.index("--max_epoch") + 1] == "2" and argv[argv.index("--batch_size") + 1] == "200"
    quick = compare.flags("epoch", data, compare.QUICK, "out")
    assert quick[quick.index("--max_epoch") + 1] == "1"  # the CPU sizes are as before
