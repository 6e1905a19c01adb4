"""benchmark.py --quick on a tiny demo set: every measurement is emitted as one JSON line and is sane."""

import json

import pytest
import torch

import benchmark
from voxtrainer.data.demo import make_demo_set


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_quick_benchmark_emits_every_measurement(tmp_path, capsys):
    make_demo_set(str(tmp_path), n_train_speakers=8, n_test_speakers=3, utts_per_speaker=4,
                  utts_per_test_speaker=3, utts_per_clip=2, min_duration=2.1, max_duration=2.5, workers=1,
                  verbose=False)
    output = tmp_path / "bench.jsonl"
    benchmark.main(["--quick", "--demo_path", str(tmp_path), "--models", "ResNetSE34L", "--precisions", "fp32",
                    "--loader_workers", "0,1", "--output", str(output)])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    written = [json.loads(line) for line in open(output)]
    assert printed == written
    by_kind = {}
    for record in written:
        by_kind.setdefault(record["measurement"], []).append(record)
    assert set(by_kind) == {"device", "demo_set", "matmul_peak", "train_step", "train_step_profile",
                            "train_loader", "eval", "eval_speedup", "summary"}
    assert by_kind["device"][0]["torch"] == torch.__version__ and by_kind["device"][0]["cpu"]
    assert all("device" in record for record in written[1:])  # the short description on every line

    step = by_kind["train_step"][0]
    assert (step["batch_utterances"], step["speakers"], step["utterances_per_speaker"]) == (16, 8, 2)
    assert step["utt_per_s"] > 0 and step["loss_finite"]
    # ~2.7 GFLOP per 200-frame utterance (forward + backward), counted by torch.utils.flop_counter
    assert 2.0 < step["gflop_per_utt"] < 3.5
    assert 0 < step["fraction_of_matmul_peak"] < 2
    profile = by_kind["train_step_profile"][0]["fraction"]
    assert sum(profile.values()) == pytest.approx(1, abs=0.01) and profile["backward"] > profile["frontend"]

    assert [r["workers"] for r in by_kind["train_loader"]] == [0, 1]
    assert all(r["utt_per_s"] > 0 for r in by_kind["train_loader"])

    fast, naive = by_kind["eval"]
    assert fast["method"] == "evaluateFromList" and fast["files"] == naive["files"] == 9
    assert fast["trials"] == naive["trials"] > 0
    speedup = by_kind["eval_speedup"][0]
    assert speedup["max_abs_score_diff"] < 1e-5 and speedup["same_eer"]
    assert by_kind["summary"][0]["eval_speedup"] == speedup["speedup"]
