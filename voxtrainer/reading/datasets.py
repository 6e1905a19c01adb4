"""What the DataLoaders read: the original's per-speaker training batches (deterministic per seed
and epoch) and the evaluation crops of each test file."""

import random
from typing import NamedTuple

import numpy
import torch
from torch.utils.data import Dataset, Sampler

from voxtrainer.reading import perturb
from voxtrainer.reading.audio import check_padding, crop_waveform, load_random_crop, read_audio
from voxtrainer.errors import InputError
from voxtrainer.inference.embedder import unique_crops
from voxtrainer.reading.input_length import check_whole_file
from voxtrainer.reading.packed import PackedStrings

class Group(NamedTuple):
    """One sampler item: utterances of one speaker and the seed of their random crops."""
    utterances: tuple
    label: int
    crop_seed: int


def as_int16_if_lossless(crops):
    """float32 crops (int16 range) as int16 when converting back gives the same bits (16-bit audio:
    half the bytes to send between processes), else None (float files' fractions, -0.0)."""
    with numpy.errstate(invalid="ignore"):  # out-of-range values cast to garbage: compared unequal below
        as16 = crops.astype(numpy.int16)
    if numpy.array_equal(as16.astype(numpy.float32).view(numpy.int32), crops.view(numpy.int32)):
        return as16
    return None


class TrainDataset(Dataset):
    """Maps a Group to (crops (len(group), samples), label), cut by the audio `protocol`
    (voxtrainer/reading/audio.py), short files filled out by `padding` (default: the protocol's own);
    `augment(crop, rng)` (augment.py), if given, runs on each crop in the loader worker.

    Today's recipes (voxtrainer/reading/perturb.py), off by default: `speed_perturb` plays the whole group at
    one speed and gives it that speed's class (label + speed index * `num_classes`); `dither` adds
    Gaussian noise of that amplitude (int16 units) to every crop, after augmentation, as Kaldi's
    feature extraction would. Each draws from the group's seed only when on, so crops are otherwise
    exactly those of the seed.

    The crops hold float32 values (int16 range under the 2020 protocol); they are sent as int16 when
    that is lossless (16-bit audio, 2020 protocol, no augmentation, dither or speed change), as
    float32 otherwise: `crops.float()` is the same either way (`voxtrainer.training.step.batch_to_device`
    converts on the training device)."""

    def __init__(self, train_list, max_frames, augment=None, protocol="2020", padding=None, speed_perturb=False,
                 num_classes=None, dither=0.0):
        if speed_perturb and not num_classes:
            raise ValueError("speed perturbation needs num_classes, the size of each speed's block of classes")
        self.files = train_list.files  # packed (voxtrainer.reading.packed): the workers share it, not copy it
        self.max_frames = max_frames
        self.augment = augment
        self.protocol = protocol
        self.padding = check_padding(padding, protocol)
        self.speed_perturb, self.num_classes, self.dither = speed_perturb, num_classes, dither

    def __len__(self):
        return len(self.files)

    def __getitem__(self, group):
        rng = random.Random(group.crop_seed)
        label = group.label
        if self.speed_perturb:
            speed_index = perturb.draw_speed(rng)
            label = perturb.speed_class(label, speed_index, self.num_classes)
            crops = [perturb.load_speed_crop(self.files[index], self.max_frames, speed_index, rng, self.protocol,
                                             self.padding) for index in group.utterances]
        else:
            crops = [load_random_crop(self.files[index], self.max_frames, rng, self.protocol, self.padding)
                     for index in group.utterances]
        if self.augment is not None:
            # Drawn after all crops are cut, so --augment does not move the crops.
            crops = [self.augment(crop, rng) for crop in crops]
        crops = numpy.stack(crops)
        if self.dither:
            crops = perturb.dither(crops, self.dither, rng, self.protocol)
        plain = self.augment is None and not self.dither  # augmented and dithered crops are float
        as16 = as_int16_if_lossless(crops) if plain else None
        return torch.from_numpy(crops if as16 is None else as16), label


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
        self._cached = None  # (epoch, EpochPlan): len() and iter() share one draw
        self.speakers, self.by_speaker = utterances_by_speaker(labels)
        short = [(utts[0], label) for label, utts in zip(self.speakers, self.by_speaker) if len(utts) < group_size]
        if short:  # the example: the first such speaker in list order
            raise InputError("%s: %d speaker(s) have fewer than %d utterances (nPerSpeaker), e.g. label %d; "
                             "lower --nPerSpeaker or remove them" % (listfile, len(short), group_size, min(short)[1]))

    def set_epoch(self, epoch):
        self.epoch = epoch

    def plan(self):
        """This epoch's EpochPlan, drawn once per epoch."""
        if self._cached is None or self._cached[0] != self.epoch:
            self._cached = (self.epoch, self._draw_plan())
        return self._cached[1]

    def batches(self):
        """This epoch's batches, lists of Group, for this rank."""
        return list(self)

    def _draw_plan(self):
        # The draws, in the original's order: each speaker's permutation (speakers in label order),
        # the crop seeds of all groups, the order of the groups.
        rng = numpy.random.default_rng([self.seed, self.epoch])
        groups = []
        for utterances in self.by_speaker:
            usable = min(len(utterances), self.max_seg_per_spk)
            usable -= usable % self.group_size
            order = rng.permutation(len(utterances))[:usable]
            groups.append(utterances[order].reshape(-1, self.group_size))
        group_labels = numpy.repeat(self.speakers, [len(block) for block in groups])
        groups = numpy.concatenate(groups) if groups else numpy.zeros((0, self.group_size), numpy.int64)
        crop_seeds = rng.integers(0, 2 ** 63 - 1, size=len(groups))
        rows = fill_batches(rng.permutation(len(groups)), group_labels, self.batch_size)
        per_rank = len(rows) // self.num_replicas
        return EpochPlan(groups, group_labels, crop_seeds, rows[self.rank::self.num_replicas][:per_rank])

    def __iter__(self):
        plan = self.plan()
        for row in plan.batches.tolist():
            yield [Group(tuple(plan.groups[position].tolist()), int(plan.labels[position]),
                         int(plan.crop_seeds[position])) for position in row]

    def __len__(self):
        return len(self.plan().batches)


class EpochPlan(NamedTuple):
    """An epoch's batches as arrays: the utterance indexes of every group (groups, group_size), each
    group's label and crop seed, and the groups of each batch (batches, batch_size)."""
    groups: numpy.ndarray
    labels: numpy.ndarray
    crop_seeds: numpy.ndarray
    batches: numpy.ndarray


def utterances_by_speaker(labels):
    """(the labels present, ascending; for each, the indexes of its utterances, ascending)."""
    labels = numpy.asarray(labels, dtype=numpy.int64)
    order = numpy.argsort(labels, kind="stable")
    speakers, counts = numpy.unique(labels[order], return_counts=True)
    return speakers, numpy.split(order, numpy.cumsum(counts)[:-1]) if len(order) else []


def fill_batches(positions, group_labels, batch_size):
    """The original's batch filling: groups in the order `positions`, a group whose speaker is
    already in the batch being filled dropped, only full batches kept -> (batches, batch_size)."""
    labels = group_labels[positions].tolist()
    rows, batch, in_batch = [], [], set()
    for position, label in zip(positions.tolist(), labels):
        if label in in_batch:
            continue
        batch.append(position)
        in_batch.add(label)
        if len(batch) == batch_size:
            rows.append(batch)
            batch, in_batch = [], set()
    return numpy.array(rows, dtype=numpy.int64).reshape(-1, batch_size)


def collate_groups(items):
    """(crops (groups, utterances, samples), labels): int16 when every group's crops are, else float32.
    In a loader worker the crops are stacked straight into shared memory, as default_collate does,
    rather than copied there when the batch is sent."""
    if len({crop.dtype for crop, _ in items}) > 1:
        items = [(crop.float(), label) for crop, label in items]  # int16 -> float32 is exact
    first = items[0][0]
    out = None
    if torch.utils.data.get_worker_info() is not None:
        storage = first.untyped_storage()._new_shared(len(items) * first.nbytes)
        out = first.new(storage).view(len(items), *first.shape)
    crops = torch.stack([crop for crop, _ in items], out=out)
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return crops, labels


def make_train_loader(train_list, max_frames, group_size, max_seg_per_spk, batch_size, num_workers, seed,
                      num_replicas=1, rank=0, augment=None, protocol="2020", pin_memory=None, padding=None,
                      speed_perturb=False, num_classes=None, dither=0.0):
    """(loader, sampler) of the training batches. `pin_memory` (default: whether CUDA is available)
    puts batches in page-locked memory, from which copies to a CUDA device run asynchronously; pass
    False when training on the CPU of a CUDA machine, where pinning is only an extra copy.
    `padding`, `speed_perturb`, `num_classes` and `dither`: TrainDataset's."""
    sampler = SpeakerBatchSampler(train_list.labels, group_size, max_seg_per_spk, batch_size, seed,
                                  num_replicas, rank, listfile=train_list.listfile)
    if len(sampler) == 0:
        raise InputError("%s: not enough speakers for one batch of %d (%d speakers); lower --batch_size" % (
            train_list.listfile, batch_size, train_list.num_speakers))
    loader = torch.utils.data.DataLoader(
        TrainDataset(train_list, max_frames, augment, protocol, padding, speed_perturb, num_classes, dither),
        batch_sampler=sampler, num_workers=num_workers,
        collate_fn=collate_groups, pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
    return loader, sampler


class EvalDataset(Dataset):
    """Unique test files -> their distinct eval crops and where each eval crop is among them:
    (unique (n, samples), index (num_eval,)), the crops being unique[index]. A file no longer than
    one crop is padded to one crop and all its eval crops are that crop: n = 1
    (voxtrainer.inference.embedder.unique_crops). Cut by the audio `protocol`. Whole-file crops
    (eval_frames 0): one crop, index [0]; a file too short for the network (`shortest` samples, for
    `model`) is an InputError naming it."""

    def __init__(self, paths, eval_frames, num_eval, protocol="2020", shortest=1, model="?"):
        self.paths = PackedStrings(paths)  # shared with the forked loader workers, not copied by them
        self.eval_frames, self.num_eval, self.protocol = eval_frames, num_eval, protocol
        self.shortest, self.model = shortest, model

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        audio = read_audio(path)
        if self.eval_frames == 0:
            check_whole_file(path, audio.shape[0], self.protocol, self.shortest, self.model)
        return unique_crops(crop_waveform(audio, self.eval_frames, evalmode=True, num_eval=self.num_eval,
                                          protocol=self.protocol))
