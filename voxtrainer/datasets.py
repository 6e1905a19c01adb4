"""What the DataLoaders read: the original's per-speaker training batches (deterministic per seed
and epoch) and the evaluation crops of each test file."""

import random
from typing import NamedTuple

import numpy
import torch
from torch.utils.data import Dataset, Sampler

from voxtrainer.audio import load_random_crop, loadWAV
from voxtrainer.errors import InputError

class Group(NamedTuple):
    """One sampler item: utterances of one speaker and the seed of their random crops."""
    utterances: tuple
    label: int
    crop_seed: int


class TrainDataset(Dataset):
    """Maps a Group to (crops (len(group), samples), label), cut by the audio `protocol`
    (voxtrainer/audio.py); `augment(crop, rng)` (augment.py), if given, runs on each crop in the
    loader worker."""

    def __init__(self, train_list, max_frames, augment=None, protocol="2020"):
        self.files = train_list.files
        self.max_frames = max_frames
        self.augment = augment
        self.protocol = protocol

    def __len__(self):
        return len(self.files)

    def __getitem__(self, group):
        rng = random.Random(group.crop_seed)
        crops = [load_random_crop(self.files[index], self.max_frames, rng, self.protocol) for index in group.utterances]
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
                      num_replicas=1, rank=0, augment=None, protocol="2020"):
    sampler = SpeakerBatchSampler(train_list.labels, group_size, max_seg_per_spk, batch_size, seed,
                                  num_replicas, rank, listfile=train_list.listfile)
    if len(sampler) == 0:
        raise InputError("%s: not enough speakers for one batch of %d (%d speakers); lower --batch_size" % (
            train_list.listfile, batch_size, train_list.num_speakers))
    loader = torch.utils.data.DataLoader(
        TrainDataset(train_list, max_frames, augment, protocol), batch_sampler=sampler, num_workers=num_workers,
        collate_fn=collate_groups, pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
    return loader, sampler


class EvalDataset(Dataset):
    """Unique test files -> their eval crops (num_eval, samples), cut by the audio `protocol`."""

    def __init__(self, paths, eval_frames, num_eval, protocol="2020"):
        self.paths, self.eval_frames, self.num_eval, self.protocol = paths, eval_frames, num_eval, protocol

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return loadWAV(self.paths[index], self.eval_frames, evalmode=True, num_eval=self.num_eval,
                       protocol=self.protocol)
