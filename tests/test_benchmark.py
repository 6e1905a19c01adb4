"""The developer tools on tiny data: `python -m tools.benchmark --quick` emits every measurement as
one sane JSON line; tools.benchmark_augment's cost measurement gives finite, positive numbers.
Speeds are never asserted."""

import json
import math
import os
import random

import numpy
import pytest
import soundfile
import torch

import tools.benchmark
import tools.benchmark_augment
from voxtrainer.reading.augment import Augmenter
from voxtrainer.data.demo import make_demo_set
from voxtrainer.reading.lists import TrainList


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def emitted(capsys, output):
    """The JSON lines a benchmark printed, checked equal to those it wrote to `output`, and the same
    grouped by their `measurement`."""
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    written = [json.loads(line) for line in open(output)]
    assert printed == written
    by_kind = {}
    for record in written:
        by_kind.setdefault(record["measurement"], []).append(record)
    return written, by_kind


def test_quick_benchmark_emits_every_measurement(tmp_path, capsys):
    make_demo_set(str(tmp_path), n_train_speakers=8, n_test_speakers=3, utts_per_speaker=4,
                  utts_per_test_speaker=3, utts_per_clip=2, min_duration=2.1, max_duration=2.5, workers=1,
                  verbose=False)
    output = tmp_path / "bench.jsonl"
    tools.benchmark.main(["--quick", "--demo_path", str(tmp_path), "--models", "ResNetSE34L", "--precisions",
                          "fp32", "--loader_workers", "0,1", "--output", str(output)])
    written, by_kind = emitted(capsys, output)
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


# -- tools.benchmark_pipeline --------------------------------------------------------------------

POSITIVE = {  # measurement: fields that must be finite and positive
    "audio_set": ("files", "seconds_mean", "mb"),
    "train_loader": ("batches", "crops_per_s", "crops_per_s_per_worker", "crops_per_worker_cpu_s", "wall_s",
                     "peak_rss_mb"),
    "eval_loader": ("files", "files_per_s", "wall_s", "peak_rss_mb"),
    "scoring": ("files", "trials", "score_s", "cpu_s", "trials_per_s", "embeddings_mb", "peak_rss_mb",
                "process_peak_rss_mb"),
    "scoring_block": ("block", "score_s", "trials_per_s", "peak_rss_mb"),
    "summary": ("total_s",),
}


def test_quick_pipeline_benchmark_emits_every_measurement(tmp_path, capsys):
    import tools.benchmark_pipeline
    output = tmp_path / "pipeline.jsonl"
    tools.benchmark_pipeline.main(["--quick", "--output", str(output)])
    _, by_kind = emitted(capsys, output)
    assert set(by_kind) == {"device", "audio_set", "crop_check", "train_loader", "train_crop_cost", "eval_loader",
                            "scoring", "scoring_block", "summary"}
    for kind, fields in POSITIVE.items():
        for record in by_kind[kind]:
            for field in fields:
                assert math.isfinite(record[field]) and record[field] > 0, (kind, field, record[field])

    assert by_kind["crop_check"][0]["crops"] > 0 and by_kind["crop_check"][0]["identical"]
    assert [r["workers"] for r in by_kind["train_loader"]] == [0, 1, 2]
    assert all(r["worker_cpu_s"] > 0 and r["largest_child_peak_rss_mb"] > 0 for r in by_kind["train_loader"][1:])
    assert by_kind["train_loader"][0]["batch_shape"] == [4, 2, 200 * 160 + 240]
    assert [r["workers"] for r in by_kind["eval_loader"]] == [0, 1, 2]
    assert all(r["files"] == by_kind["audio_set"][0]["files"] for r in by_kind["eval_loader"])
    assert [r["scale"] for r in by_kind["scoring"]] == ["VoxCeleb1-O", "VoxCeleb1-E"]
    for record in by_kind["scoring"]:
        assert record["identical_to_gathered"] and record["scores_finite"] and record["checked_trials"] > 0
        assert record["process_peak_rss_mb"] >= record["rss_with_data_mb"] >= record["embeddings_mb"]
    assert {r["block"] for r in by_kind["scoring_block"]} == {64, 128}
    cost = by_kind["train_crop_cost"][0]
    assert set(cost["crops_per_s"]) == set(cost["relative_to_plain"]) == {"plain", "speed_perturb", "dither"}
    assert all(rate > 0 for rate in cost["crops_per_s"].values()) and cost["relative_to_plain"]["plain"] == 1
    summary = by_kind["summary"][0]
    assert summary["speed_perturb_relative_crop_rate"] == cost["relative_to_plain"]["speed_perturb"]
    assert set(summary["train_crops_per_s_per_worker"]) == {"0", "1", "2"}
    assert all(summary["targets_met"][name] for name in summary["targets_met"] if "identical" in name)


# The crop check: training crops of plain 16-bit PCM WAV files are read without libsndfile
# (voxtrainer.reading.audio.pcm16_wav_data); every other layout falls back to libsndfile. Either way a crop
# must be, sample for sample, what the libsndfile path gives.

def wav_file(path, samples, chunks=("fmt ", "data"), rate=16000, channels=1, tag=1, data_size=None, riff_size=None):
    """A RIFF/WAVE file written byte by byte: `chunks` in order, "fmt " and "data" built from the
    arguments, any other name an odd-sized chunk of filler (padded to even size, as RIFF wants)."""
    import struct
    data = numpy.asarray(samples, dtype="<i2").tobytes()
    payloads = {"fmt ": struct.pack("<HHIIHH", tag, channels, rate, rate * channels * 2, channels * 2, 16),
                "data": data}
    body = b"WAVE"
    for name in chunks:
        payload = payloads.get(name, b"x" * 27)
        size = data_size if name == "data" and data_size is not None else len(payload)
        body += name.encode() + struct.pack("<I", size) + payload + b"\0" * (len(payload) % 2)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body)
    return str(path)


def crop_or_error(path, max_frames, seed):
    from voxtrainer.reading.audio import load_random_crop
    from voxtrainer.errors import InputError
    try:
        return load_random_crop(path, max_frames, random.Random(seed))
    except InputError as error:
        return "InputError: %s" % error


SAMPLES = numpy.arange(40000) % 20000 - 10000


@pytest.mark.parametrize("make, direct", [
    (lambda p: (soundfile.write(str(p), SAMPLES.astype(numpy.int16), 16000, subtype="PCM_16"), str(p))[1], True),
    (lambda p: wav_file(p, SAMPLES), True),
    (lambda p: wav_file(p, SAMPLES[:500]), True),  # shorter than a crop: padded
    (lambda p: wav_file(p, SAMPLES[:1]), True),
    (lambda p: wav_file(p, SAMPLES, chunks=("fmt ", "LIST", "data", "id3 ")), True),  # as ffmpeg writes, + a tail
    (lambda p: wav_file(p, SAMPLES, chunks=("JUNK", "fmt ", "fact", "data")), True),
    (lambda p: (soundfile.write(str(p), SAMPLES.astype(numpy.int16), 16000, subtype="PCM_16", format="WAVEX"),
                str(p))[1], False),  # WAVE_FORMAT_EXTENSIBLE
    (lambda p: (soundfile.write(str(p), SAMPLES.astype(numpy.int16), 16000, subtype="PCM_16", format="FLAC"),
                str(p))[1], False),
    (lambda p: (soundfile.write(str(p), SAMPLES / 32768, 16000, subtype="FLOAT"), str(p))[1], False),
    (lambda p: wav_file(p, SAMPLES, rate=8000), False),
    (lambda p: wav_file(p, numpy.repeat(SAMPLES, 2), channels=2), False),
    (lambda p: wav_file(p, SAMPLES, data_size=2 * len(SAMPLES) + 1000), False),  # truncated
    (lambda p: wav_file(p, SAMPLES, data_size=2 * len(SAMPLES) - 1), False),  # odd-sized data chunk
    (lambda p: wav_file(p, SAMPLES, data_size=0xFFFFFFFF), False),  # streamed: size unknown
    (lambda p: wav_file(p, SAMPLES, riff_size=100), False),  # data beyond the RIFF chunk
    (lambda p: wav_file(p, SAMPLES, chunks=("data", "fmt ")), False),
    (lambda p: wav_file(p, [], chunks=("fmt ", "data")), False),
    (lambda p: (p.write_bytes(b"RIFF\x04\x00\x00\x00WAVE"), str(p))[1], False),
    (lambda p: (p.write_bytes(b"not audio at all"), str(p))[1], False),
])
def test_training_crops_read_directly_equal_those_read_through_libsndfile(tmp_path, monkeypatch, make, direct):
    import voxtrainer.reading.audio
    path = make(tmp_path / "a.wav")
    with open(path, "rb") as handle:
        assert (voxtrainer.reading.audio.pcm16_wav_data(handle) is not None) == direct
    for max_frames in (200, 1):
        crops = [crop_or_error(path, max_frames, seed) for seed in range(6)]
        with monkeypatch.context() as patch:
            patch.setattr(voxtrainer.reading.audio, "pcm16_wav_data", lambda handle: None)  # libsndfile for every file
            through_libsndfile = [crop_or_error(path, max_frames, seed) for seed in range(6)]
        for crop, expected in zip(crops, through_libsndfile):
            if isinstance(expected, str):
                assert crop == expected
            else:
                assert crop.dtype == expected.dtype == numpy.float32
                numpy.testing.assert_array_equal(crop, expected)


def test_a_missing_training_file_is_the_same_input_error_as_before(tmp_path):
    message = crop_or_error(str(tmp_path / "missing.wav"), 200, 0)
    assert message.startswith("InputError: %s: cannot read audio" % (tmp_path / "missing.wav"))
