"""The developer tools on tiny data: `python -m tools.benchmark --quick` emits every measurement as
one sane JSON line; tools.benchmark_augment's cost measurement gives finite, positive numbers.
Speeds are never asserted."""

import json
import math
import os

import numpy
import pytest
import soundfile
import torch

import tools.benchmark
import tools.benchmark_augment
from voxtrainer.augment import Augmenter
from voxtrainer.data.demo import make_demo_set
from voxtrainer.lists import TrainList


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_quick_benchmark_emits_every_measurement(tmp_path, capsys):
    make_demo_set(str(tmp_path), n_train_speakers=8, n_test_speakers=3, utts_per_speaker=4,
                  utts_per_test_speaker=3, utts_per_clip=2, min_duration=2.1, max_duration=2.5, workers=1,
                  verbose=False)
    output = tmp_path / "bench.jsonl"
    tools.benchmark.main(["--quick", "--demo_path", str(tmp_path), "--models", "ResNetSE34L", "--precisions",
                          "fp32", "--loader_workers", "0,1", "--output", str(output)])
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
    assert fast["method"] == "evaluate_list" and fast["files"] == naive["files"] == 9
    assert fast["trials"] == naive["trials"] > 0
    speedup = by_kind["eval_speedup"][0]
    assert speedup["max_abs_score_diff"] < 1e-5 and speedup["same_eer"]
    assert by_kind["summary"][0]["eval_speedup"] == speedup["speedup"]


def write_noise(path, seconds, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    audio = numpy.random.default_rng(seed).normal(0, 1000, int(16000 * seconds))
    soundfile.write(path, audio.astype(numpy.int16), 16000)


def test_augment_cost_measurement_runs_on_a_tiny_demo_set(demo_set, tmp_path):
    demo = demo_set()
    musan, rirs = str(tmp_path / "musan_split"), str(tmp_path / "simulated_rirs")
    for seed, kind in enumerate(("noise", "speech", "music")):
        write_noise(os.path.join(musan, kind, "source", "file", "00000.wav"), 1.0, seed)
    write_noise(os.path.join(rirs, "smallroom", "Room001", "Room001-00001.wav"), 0.05, 3)
    costs = tools.benchmark_augment.measure_costs(TrainList(demo.train_list, demo.train_path),
                                                  Augmenter(musan, rirs), max_frames=50, nOut=32, crops=8, batch=4, repeats=1)
    assert set(costs) == {"plain", "augmented", "step", "overhead"}
    assert all(math.isfinite(value) for value in costs.values())
    assert costs["plain"] > 0 and costs["augmented"] > 0 and costs["step"] > 0
