"""Audio loading, list parsing, and the per-speaker training sampler.

Crops follow the original exactly: int16 sample values as float (not scaled),
`max_frames * 160 + 240` samples, symmetric zero padding of short files.
"""

import math
import os
import random
from typing import NamedTuple

import numpy
import soundfile
import torch
from torch.utils.data import Dataset, Sampler

SAMPLE_RATE = 16000


class InputError(Exception):
    """A problem with the user's files or arguments: reported as one line, never a traceback.

    When raised inside a DataLoader worker, torch re-raises it in the main process with the
    worker's traceback prepended; `str(error).splitlines()[-1]` still ends with our message.
    """

    @property
    def line(self):
        last = str(self).strip().splitlines()[-1] if str(self).strip() else ""
        prefix = type(self).__name__ + ": "
        return last[len(prefix):] if last.startswith(prefix) else last


def crop_samples(max_frames):
    return max_frames * 160 + 240


def audio_info(filename):
    """Frame count of a 16 kHz mono file; InputError naming the file otherwise."""
    try:
        info = soundfile.info(filename)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise InputError("%s: cannot read audio (%s)" % (filename, str(error).strip() or type(error).__name__))
    if info.samplerate != SAMPLE_RATE:
        raise InputError("%s: sample rate is %d Hz, expected %d Hz (resample it, e.g. with "
                         "dataprep.py --convert or ffmpeg -ar 16000)" % (filename, info.samplerate, SAMPLE_RATE))
    if info.channels != 1:
        raise InputError("%s: has %d channels, expected mono (convert with ffmpeg -ac 1)" % (filename, info.channels))
    if info.frames == 0:
        raise InputError("%s: contains no audio samples" % filename)
    return info.frames


def read_audio(filename, start=0, stop=None):
    """int16 samples [start, stop) of a validated file, as float32 values in int16 range."""
    audio_info(filename)
    try:
        audio, _ = soundfile.read(filename, start=start, stop=stop, dtype="int16", always_2d=False)
    except Exception as error:
        raise InputError("%s: cannot read audio (%s)" % (filename, str(error).strip() or type(error).__name__))
    return audio.astype(numpy.float32)


def symmetric_padding(num_samples, max_audio):
    """Zeros added on each side of a file no longer than one crop, as the original."""
    return math.floor((max_audio - num_samples + 1) / 2) if num_samples <= max_audio else 0


def loadWAV(filename, max_frames, evalmode=True, num_eval=10):
    """The original's crops: `num_eval` evenly spaced crops in eval mode (one whole-file crop
    when max_frames is 0), else one random crop (Python's `random`). Returns (crops, samples)."""
    return crop_waveform(read_audio(filename), max_frames, evalmode, num_eval)


def crop_waveform(audio, max_frames, evalmode=True, num_eval=10):
    """loadWAV's crops of a waveform already in memory (1-D float32, int16 range)."""
    max_audio = crop_samples(max_frames)
    shortage = symmetric_padding(audio.shape[0], max_audio)
    if shortage:
        audio = numpy.pad(audio, (shortage, shortage), "constant", constant_values=0)
    audiosize = audio.shape[0]

    if evalmode and max_frames == 0:
        return torch.from_numpy(audio[numpy.newaxis, :].copy())
    if evalmode:
        starts = numpy.linspace(0, audiosize - max_audio, num=num_eval)
    else:
        starts = numpy.array([numpy.int64(random.random() * (audiosize - max_audio))])
    crops = [audio[int(start):int(start) + max_audio] for start in starts]
    return torch.from_numpy(numpy.stack(crops, axis=0))


def load_random_crop(filename, max_frames, rng):
    """One training crop, as loadWAV(evalmode=False) with `rng` in place of the global `random`,
    reading only the samples it needs from disk."""
    max_audio = crop_samples(max_frames)
    num_samples = audio_info(filename)
    shortage = symmetric_padding(num_samples, max_audio)
    padded_size = num_samples + 2 * shortage
    start = int(numpy.int64(rng.random() * (padded_size - max_audio))) - shortage
    first, last = max(start, 0), min(start + max_audio, num_samples)
    crop = numpy.zeros(max_audio, dtype=numpy.float32)
    crop[first - start:last - start] = read_audio(filename, first, last)
    return crop


# ---------------------------------------------------------------------------------------------
# Lists

def read_list(listfile, fields, what):
    """Lines of a whitespace-separated list as (line_number, fields); InputError on bad lines."""
    if not os.path.isfile(listfile):
        raise InputError("%s: %s not found" % (listfile, what))
    rows = []
    with open(listfile) as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in fields:
                raise InputError("%s:%d: expected %s fields, found %d: %r" % (
                    listfile, number, " or ".join(map(str, fields)), len(parts), line.rstrip("\n")))
            rows.append((number, parts))
    if not rows:
        raise InputError("%s: %s is empty" % (listfile, what))
    return rows


def check_files_exist(paths, listfile, root_flag, shown=5):
    """InputError listing the first few files of a list that are not on disk."""
    missing = [(number, path) for number, path in paths if not os.path.isfile(path)]
    if missing:
        examples = ", ".join("%s (line %d)" % (path, number) for number, path in missing[:shown])
        raise InputError("%s: %d listed audio file(s) not found, e.g. %s; check %s" % (
            listfile, len(missing), examples, root_flag))


class TrainList:
    """A `speaker relative/path.wav` list: file paths and integer labels (sorted speaker ids)."""

    def __init__(self, train_list, train_path):
        rows = read_list(train_list, fields=(2,), what="train list")
        speakers = sorted({parts[0] for _, parts in rows})
        self.speaker_index = {speaker: index for index, speaker in enumerate(speakers)}
        self.files = [os.path.join(train_path, parts[1]) for _, parts in rows]
        self.labels = [self.speaker_index[parts[0]] for _, parts in rows]
        check_files_exist([(number, path) for (number, _), path in zip(rows, self.files)], train_list, "--train_path")
        self.listfile = train_list

    @property
    def num_speakers(self):
        return len(self.speaker_index)


# ---------------------------------------------------------------------------------------------
# Training data

class Group(NamedTuple):
    """One sampler item: utterances of one speaker and the seed of their random crops."""
    utterances: tuple
    label: int
    crop_seed: int


class TrainDataset(Dataset):
    """Maps a Group to (crops (len(group), samples), label); `augment(crop, rng)` (augment.py), if
    given, runs on each crop in the loader worker."""

    def __init__(self, train_list, max_frames, augment=None):
        self.files = train_list.files
        self.max_frames = max_frames
        self.augment = augment

    def __len__(self):
        return len(self.files)

    def __getitem__(self, group):
        rng = random.Random(group.crop_seed)
        crops = [load_random_crop(self.files[index], self.max_frames, rng) for index in group.utterances]
        if self.augment is not None:
            # Drawn after all crops are cut, so --augment does not move the crops.
            crops = [self.augment(crop, rng) for crop in crops]
        return torch.from_numpy(numpy.stack(crops)), group.label


class SpeakerBatchSampler(Sampler):
    """The original's per-speaker batches, deterministic per (seed, epoch).

    Each speaker's utterances are shuffled and cut into groups of `group_size`, at most
    `max_seg_per_spk` per speaker (rounded down to a multiple of group_size); the groups are
    shuffled and a group whose speaker is already in the current batch is dropped, as the
    original did. Only full batches are yielded. With `num_replicas > 1` each rank gets every
    num_replicas-th batch, all ranks the same number.
    """

    def __init__(self, labels, group_size, max_seg_per_spk, batch_size, seed=0, num_replicas=1, rank=0,
                 listfile="train list"):
        self.group_size, self.max_seg_per_spk, self.batch_size = group_size, max_seg_per_spk, batch_size
        self.seed, self.num_replicas, self.rank = seed, num_replicas, rank
        self.epoch = 0
        self._cached = None  # (epoch, batches): len() and iter() share one draw
        self.by_speaker = {}
        for index, label in enumerate(labels):
            self.by_speaker.setdefault(label, []).append(index)
        short = [label for label, utts in self.by_speaker.items() if len(utts) < group_size]
        if short:
            raise InputError("%s: %d speaker(s) have fewer than %d utterances (nPerSpeaker), e.g. label %d; "
                             "lower --nPerSpeaker or remove them" % (listfile, len(short), group_size, short[0]))

    def set_epoch(self, epoch):
        self.epoch = epoch

    def batches(self):
        if self._cached is None or self._cached[0] != self.epoch:
            self._cached = (self.epoch, self._draw_batches())
        return self._cached[1]

    def _draw_batches(self):
        rng = numpy.random.default_rng([self.seed, self.epoch])
        groups, group_labels = [], []
        for label in sorted(self.by_speaker):
            utterances = self.by_speaker[label]
            usable = min(len(utterances), self.max_seg_per_spk)
            usable -= usable % self.group_size
            order = rng.permutation(len(utterances))[:usable]
            for first in range(0, usable, self.group_size):
                groups.append(tuple(utterances[i] for i in order[first:first + self.group_size]))
                group_labels.append(label)

        batches, batch, in_batch = [], [], set()
        crop_seeds = rng.integers(0, 2 ** 63 - 1, size=len(groups))
        for position in rng.permutation(len(groups)):
            label = group_labels[position]
            if label in in_batch:
                continue
            batch.append(Group(groups[position], label, int(crop_seeds[position])))
            in_batch.add(label)
            if len(batch) == self.batch_size:
                batches.append(batch)
                batch, in_batch = [], set()
        per_rank = len(batches) // self.num_replicas
        return batches[self.rank::self.num_replicas][:per_rank]

    def __iter__(self):
        return iter(self.batches())

    def __len__(self):
        return len(self.batches())


def collate_groups(items):
    crops = torch.stack([crop for crop, _ in items])
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return crops, labels


def make_train_loader(train_list, max_frames, group_size, max_seg_per_spk, batch_size, num_workers, seed,
                      num_replicas=1, rank=0, augment=None):
    sampler = SpeakerBatchSampler(train_list.labels, group_size, max_seg_per_spk, batch_size, seed,
                                  num_replicas, rank, listfile=train_list.listfile)
    if len(sampler) == 0:
        raise InputError("%s: not enough speakers for one batch of %d (%d speakers); lower --batch_size" % (
            train_list.listfile, batch_size, train_list.num_speakers))
    loader = torch.utils.data.DataLoader(
        TrainDataset(train_list, max_frames, augment), batch_sampler=sampler, num_workers=num_workers,
        collate_fn=collate_groups, pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
    return loader, sampler


# ---------------------------------------------------------------------------------------------
# Evaluation data

class TestList:
    """A `label enrol test` list (label optional, as the original) and its unique files."""

    def __init__(self, test_list, test_path):
        rows = read_list(test_list, fields=(2, 3), what="test list")
        self.labels, self.trials = [], []
        for _, parts in rows:
            # The original draws a random label for unlabelled trials; the EER is then meaningless.
            self.labels.append(int(parts[0]) if len(parts) == 3 else random.randint(0, 1))
            self.trials.append((parts[-2], parts[-1]))
        self.files = sorted({name for trial in self.trials for name in trial})
        first_line = {}
        for (number, _), trial in zip(rows, self.trials):
            for name in trial:
                first_line.setdefault(name, number)
        self.test_path = test_path
        check_files_exist([(first_line[name], os.path.join(test_path, name)) for name in self.files],
                          test_list, "--test_path")


class EvalDataset(Dataset):
    """Unique test files -> their eval crops (num_eval, samples)."""

    def __init__(self, paths, eval_frames, num_eval):
        self.paths, self.eval_frames, self.num_eval = paths, eval_frames, num_eval

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return loadWAV(self.paths[index], self.eval_frames, evalmode=True, num_eval=self.num_eval)
