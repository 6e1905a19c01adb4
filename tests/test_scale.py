"""Lists at VoxCeleb scale: per-file columns packed so that forked loader workers share them, the
sampler's numpy epoch plan giving the original's batches, the threaded file look-up, and a smoke
run of tools/benchmark_scale.py on tiny lists."""

import json
import os

import numpy
import pytest

import tools.benchmark_scale
from tools.scale_probe import memory_of
from voxtrainer.reading import filecheck
from voxtrainer.reading.datasets import Group, SpeakerBatchSampler
from voxtrainer.errors import InputError
from voxtrainer.reading.lists import TrainList
from voxtrainer.reading.packed import IntColumn, PackedStrings, joined_paths

ODD_NAMES = ["id00012/abc.wav", "", "ünïcode/名前.wav", "bad\udcffbyte.wav", "x" * 300, "a b"]


def test_packed_strings_give_back_every_string_as_given():
    packed = PackedStrings(ODD_NAMES)
    assert len(packed) == len(ODD_NAMES)
    assert [packed[index] for index in range(len(ODD_NAMES))] == ODD_NAMES
    assert list(packed) == ODD_NAMES and packed == ODD_NAMES
    assert packed[-1] == ODD_NAMES[-1] and packed[numpy.int64(2)] == ODD_NAMES[2]
    with pytest.raises(IndexError):
        packed[len(ODD_NAMES)]


def test_packed_strings_take_any_indexes_in_the_order_given():
    packed = PackedStrings(ODD_NAMES)
    keep = [5, 0, 2, 2, 3]
    assert list(packed.take(keep)) == [ODD_NAMES[index] for index in keep]
    assert list(packed[1:4]) == ODD_NAMES[1:4]
    assert list(packed.take([])) == []


@pytest.mark.parametrize("names", [["a/b.wav", "ü/c.wav"], ["a/b.wav", "/abs/c.wav"], ["/abs/first.wav"], []])
@pytest.mark.parametrize("root", ["root", "root/", ""])
def test_joined_paths_are_os_path_join_of_each_name(root, names):
    assert list(joined_paths(root, names)) == [os.path.join(root, name) for name in names]


def test_packed_strings_refuse_a_string_with_a_nul():
    with pytest.raises(ValueError, match="NUL"):
        PackedStrings(["a", "b\0c"])


def test_int_column_reads_as_python_ints_and_as_its_array():
    column = IntColumn([3, 1, 4, 1, 5])
    assert column == [3, 1, 4, 1, 5] and type(column[0]) is int
    assert numpy.asarray(column) is column.array
    assert column[numpy.array([4, 0])] == [5, 3]
    assert column != [3, 1, 4]


def test_train_list_columns_are_packed_and_hold_the_list(demo):
    train_list = TrainList(demo.train_list, demo.train_path)
    lines = [line.split() for line in open(demo.train_list) if line.strip()]
    speakers = sorted({speaker for speaker, _ in lines})
    assert isinstance(train_list.files, PackedStrings) and isinstance(train_list.labels, IntColumn)
    assert list(train_list.names) == [name for _, name in lines]
    assert list(train_list.files) == [os.path.join(demo.train_path, name) for _, name in lines]
    assert list(train_list.labels) == [speakers.index(speaker) for speaker, _ in lines]
    kept = train_list.subset([3, 1])
    assert list(kept.names) == [lines[3][1], lines[1][1]] and list(kept.labels) == [train_list.labels[3],
                                                                                   train_list.labels[1]]


def per_speaker_loop_batches(labels, group_size, max_seg_per_spk, batch_size, seed, epoch):
    """The original's epoch, drawn as the trainer drew it before the numpy plan: a loop over
    speakers, groups and batches of Python lists (one rank)."""
    rng = numpy.random.default_rng([seed, epoch])
    by_speaker = {}
    for index, label in enumerate(labels):
        by_speaker.setdefault(label, []).append(index)
    groups, group_labels = [], []
    for label in sorted(by_speaker):
        utterances = by_speaker[label]
        usable = min(len(utterances), max_seg_per_spk)
        usable -= usable % group_size
        order = rng.permutation(len(utterances))[:usable]
        for first in range(0, usable, group_size):
            groups.append(tuple(utterances[i] for i in order[first:first + group_size]))
            group_labels.append(label)
    batches, batch, in_batch = [], [], set()
    crop_seeds = rng.integers(0, 2 ** 63 - 1, size=len(groups))
    for position in rng.permutation(len(groups)):
        if group_labels[position] in in_batch:
            continue
        batch.append(Group(groups[position], group_labels[position], int(crop_seeds[position])))
        in_batch.add(group_labels[position])
        if len(batch) == batch_size:
            batches.append(batch)
            batch, in_batch = [], set()
    return batches


@pytest.mark.parametrize("group_size,max_seg_per_spk,batch_size", [(2, 100, 5), (1, 7, 3), (3, 9, 4), (2, 3, 1)])
def test_sampler_numpy_plan_gives_the_per_speaker_loop_batches(group_size, max_seg_per_spk, batch_size):
    labels = numpy.random.default_rng(7).integers(0, 23, size=900).tolist()
    sampler = SpeakerBatchSampler(IntColumn(labels), group_size, max_seg_per_spk, batch_size, seed=4)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        expected = per_speaker_loop_batches(labels, group_size, max_seg_per_spk, batch_size, 4, epoch)
        assert len(sampler) == len(expected) and list(sampler) == expected
        assert all(type(index) is int for batch in sampler for group in batch for index in group.utterances)


def test_sampler_names_the_first_listed_speaker_with_too_few_utterances():
    with pytest.raises(InputError, match="2 speaker\\(s\\) have fewer than 2 utterances.*e.g. label 7"):
        SpeakerBatchSampler([5, 7, 5, 3, 5], group_size=2, max_seg_per_spk=10, batch_size=1)


def uss_growth_of_reading_in_a_fork(column):
    """USS (MB) a forked child gains by reading every item of `column` once."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        before = memory_of(os.getpid())["uss"]
        total = sum(len(column[index]) for index in range(len(column)))
        os.write(writer, json.dumps([memory_of(os.getpid())["uss"] - before, total]).encode())
        os._exit(0)
    os.close(writer)
    grown, _ = json.loads(os.read(reader, 1000))
    os.waitpid(child, 0)
    return grown


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux's smaps_rollup")
def test_forked_reader_copies_a_python_list_of_paths_but_not_packed_paths():
    paths = ["id%05d/%s/%05d.wav" % (index // 50, "video%06d" % index, index) for index in range(300_000)]
    as_list_mb = uss_growth_of_reading_in_a_fork(paths)
    packed_mb = uss_growth_of_reading_in_a_fork(PackedStrings(paths))
    assert as_list_mb > 10  # the measurement sees copy-on-write: about 80 bytes per str object
    assert packed_mb < as_list_mb / 5


def test_file_lookup_finds_every_missing_file_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(filecheck, "CHUNK", 3)
    paths = []
    for index in range(20):
        path = tmp_path / ("%02d.wav" % index)
        if index not in (0, 7, 8, 19):
            path.write_bytes(b"")
        paths.append(str(path))
    assert filecheck.missing_indexes(PackedStrings(paths), threads=4) == [0, 7, 8, 19]
    assert filecheck.missing_indexes(paths, progress=False) == [0, 7, 8, 19]


def test_scale_benchmark_quick_run_reports_every_measurement(tmp_path, capsys):
    output = tmp_path / "scale.jsonl"
    tools.benchmark_scale.main(["--quick", "--watch_s", "0.5", "--output", str(output)])
    records = [json.loads(line) for line in open(output)]
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == records
    kinds = [record["measurement"] for record in records]
    assert kinds == ["setup"] + ["train_start", "train_epoch", "sampler", "eval_start"] * 2 + ["acceptance"]
    for record in records:
        if record["measurement"] == "train_start":
            assert 0 < record["epoch_line_s"] <= record["first_step_s"]
            assert len(record["workers_peak_mb"]) == 2 and record["main_peak_mb"]["pss"] > 0
        if record["measurement"] == "train_epoch":
            assert record["steps"] > 0 and len(record["workers_mb"]) == 2
        if record["measurement"] == "eval_start":
            assert record["first_batch_s"] > 0 and record["main_mb"]["rss"] > 0
        if record["measurement"] == "sampler":
            assert [epoch["batches"] for epoch in record["epochs"]] == [epoch["iterated"] for epoch in record["epochs"]]
    assert len(records[-1]["worker_uss_growth_epoch_end_mb"]) == 2
