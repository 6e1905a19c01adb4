"""The list files: train lists (`speaker path`), test lists (`label enrol test`) and plain path
lists; every bad line or missing file is an InputError naming the file and line.

Lists are read as UTF-8 (a byte-order mark, as Windows editors write, is dropped); a line that is
not UTF-8 is an InputError naming it."""

import copy
import os
import re

import numpy

from voxtrainer.errors import InputError
from voxtrainer.reading.filecheck import missing_indexes
from voxtrainer.reading.packed import IntColumn, PackedStrings, joined_paths

LABELS = {"0": 0, "1": 1}
PROGRESS_MIN_FILES = 1000  # check_audio_files shows a progress bar from this many files on
UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as errors="surrogateescape" keeps them


def read_list(listfile, fields, what, error=InputError, comments=False, empty_ok=False):
    """Lines of a whitespace-separated list as (line_number, fields); `error` (an InputError type)
    naming the file and line for a missing file, an empty one (unless `empty_ok`), a line that is
    not UTF-8 and, when `fields` (the allowed field counts) is given, a line with another count.
    With `comments`, lines starting with # are skipped."""
    if not os.path.isfile(listfile):
        raise error("%s: %s not found" % (listfile, what))
    rows = []
    with open(listfile, encoding="utf-8-sig", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.isascii():
                undecodable = UNDECODABLE.search(line)
                if undecodable:
                    raise error("%s:%d: not UTF-8 text (byte 0x%02x); save the %s as UTF-8" % (
                        listfile, number, ord(undecodable.group()) - 0xdc00, what))
                line = line.lstrip("\ufeff")  # the mark of a second list concatenated to the first
            parts = line.split()
            if not parts or (comments and parts[0].startswith("#")):
                continue
            if fields and len(parts) not in fields:
                raise error("%s:%d: expected %s fields, found %d: %r" % (
                    listfile, number, " or ".join(map(str, fields)), len(parts), line.rstrip("\n")))
            rows.append((number, parts))
    if not rows and not empty_ok:
        raise error("%s: %s is empty" % (listfile, what))
    return rows


def check_files_exist(paths, listfile, root_flag, shown=5, progress=True):
    """InputError listing the first few files of (line_number, path) pairs that are not on disk."""
    missing = [paths[index] for index in missing_indexes([path for _, path in paths], progress)]
    report_missing(missing, listfile, root_flag, shown)


def report_missing(missing, listfile, root_flag, shown=5):
    """InputError naming the first few of the (line_number, path) pairs `missing`, if any."""
    if missing:
        examples = ", ".join("%s (line %d)" % (path, number) for number, path in missing[:shown])
        raise InputError("%s: %d listed audio file(s) not found, e.g. %s; check %s" % (
            listfile, len(missing), examples, root_flag))


def check_audio_files(paths, listfile, progress=True, what="audio", check_length=None):
    """Read the header of every unique file of (line_number, path) pairs (voxtrainer.reading.audio.audio_info);
    InputError `<listfile>:<line>: <file>: <problem>` for the first bad one in list order (8 kHz,
    stereo, empty or unreadable, or refused by `check_length(path, samples)`, e.g. too short for a
    whole-file evaluation). A progress bar (stderr) for lists of PROGRESS_MIN_FILES files or more."""
    from tqdm import tqdm

    from voxtrainer.reading.audio import audio_info
    first_line = {}
    for number, path in paths:
        first_line.setdefault(path, number)
    bar = tqdm(first_line.items(), desc="Checking %s" % what, unit="file", leave=False,
               disable=not progress or len(first_line) < PROGRESS_MIN_FILES)
    try:
        for path, number in bar:
            try:
                samples = audio_info(path)
                if check_length is not None:
                    check_length(path, samples)
            except InputError as error:
                raise InputError("%s:%d: %s" % (listfile, number, error.line))
    finally:
        bar.close()


class TrainList:
    """A `speaker relative/path.wav` list: file paths and integer labels (sorted speaker ids).

    The per-file columns (files, names, labels) are packed (voxtrainer.reading.packed), so that forked
    loader workers share them with the trainer instead of each copying them."""

    def __init__(self, train_list, train_path, progress=True):
        rows = read_list(train_list, fields=(2,), what="train list")
        speakers = sorted({parts[0] for _, parts in rows})
        self.speaker_index = {speaker: index for index, speaker in enumerate(speakers)}
        names = [parts[1] for _, parts in rows]
        self.files = joined_paths(train_path, names)
        self.train_path = train_path
        self.names = PackedStrings.from_text("\0".join(names), len(names))  # as listed, relative to train_path
        del names
        self.labels = IntColumn([self.speaker_index[parts[0]] for _, parts in rows])
        line_numbers = numpy.fromiter((number for number, _ in rows), dtype=numpy.int64, count=len(rows))
        del rows  # a million small objects: not kept for the loader workers to inherit
        missing = missing_indexes(self.files, progress, what="Looking up train files")
        report_missing([(int(line_numbers[index]), self.files[index]) for index in missing], train_list,
                       "--train_path")
        self.listfile = train_list

    @property
    def num_speakers(self):
        return len(self.speaker_index)

    def subset(self, keep):
        """This list with only the utterances at the indexes `keep` (files, names and labels alike);
        speakers keep their indexes."""
        kept = copy.copy(self)
        kept.files = self.files.take(keep)
        kept.names = self.names.take(keep)
        kept.labels = self.labels[numpy.asarray(keep, dtype=numpy.int64)]
        return kept


def durations_of(paths, progress=True):
    """Seconds of audio in each file (its header: voxtrainer.reading.audio.audio_frames), each unique file
    read once; a progress bar (stderr) for PROGRESS_MIN_FILES files or more."""
    from tqdm import tqdm

    from voxtrainer.reading.audio import SAMPLE_RATE, audio_frames
    unique = list(dict.fromkeys(paths))
    bar = tqdm(unique, desc="Reading durations", unit="file", leave=False,
               disable=not progress or len(unique) < PROGRESS_MIN_FILES)
    try:
        seconds = {path: audio_frames(path) / SAMPLE_RATE for path in bar}
    finally:
        bar.close()
    return [seconds[path] for path in paths]


def leave_out_by_duration(train_list, min_seconds=None, max_seconds=None, progress=True):
    """(the train list without the utterances shorter than `min_seconds` or longer than
    `max_seconds`, the line to print: the list after filtering and what was dropped, duration_note),
    as WeSpeaker's filter (processor.filter) drops short utterances. Labels keep their speaker's index
    in the whole list, as WeSpeaker's spk2id, so a speaker's class does not depend on the filter.
    InputError when no utterance is left."""
    if min_seconds is not None and max_seconds is not None and min_seconds > max_seconds:
        raise InputError("--min_train_seconds %g is above --max_train_seconds %g" % (min_seconds, max_seconds))
    low = 0.0 if min_seconds is None else min_seconds
    high = float("inf") if max_seconds is None else max_seconds
    durations = durations_of(train_list.files, progress)
    keep = [index for index, seconds in enumerate(durations) if low <= seconds <= high]
    if not keep:
        raise InputError("%s: all %d utterances are outside [%g, %g] s; widen --min_train_seconds/"
                         "--max_train_seconds" % (train_list.listfile, len(train_list.files), low, high))
    kept = train_list.subset(keep)
    return kept, duration_note(train_list, kept, durations, low, high)


def duration_note(whole, kept, durations, low, high):
    """What the duration filter left, then what it dropped: "duration filter [a, b] s: N utterances of
    S speakers left; left out D of M (d1 shorter, d2 longer)" and the speakers it left with no
    utterance, the first named (their classes stay, untrained)."""
    shorter = sum(seconds < low for seconds in durations)
    longer = sum(seconds > high for seconds in durations)
    speakers_left = set(kept.labels)
    line = "duration filter [%g, %g] s: %d utterances of %d speakers left; left out %d of %d (%d shorter, %d longer)" % (
        low, high, len(kept.files), len(speakers_left), shorter + longer, len(whole.files), shorter, longer)
    present = set(whole.labels)
    lost = sorted(speaker for speaker, label in whole.speaker_index.items()
                  if label in present and label not in speakers_left)
    if lost:
        line += " and every utterance of %d speaker(s), e.g. %s" % (len(lost), lost[0])
    return line


class TestList:
    """A `label enrol test` list (label 1: same speaker, 0: different) and its unique files.

    Unlike the original, which gives an unlabelled trial a random label (and so prints a meaningless
    EER), every trial must be labelled, and both labels must occur."""

    __test__ = False  # not a pytest test class, although test files import it

    def __init__(self, test_list, test_path):
        rows = read_list(test_list, fields=(2, 3), what="test list")
        self.labels, self.trials = [], []
        for number, parts in rows:
            if len(parts) == 2:
                raise InputError("%s:%d: trial has no label; a test list needs 'label enrol test' lines, label 1 for "
                                 "the same speaker and 0 for different ones, to compute an EER" % (test_list, number))
            if parts[0] not in LABELS:
                raise InputError("%s:%d: label must be 0 or 1, found %r" % (test_list, number, parts[0]))
            self.labels.append(LABELS[parts[0]])
            self.trials.append((parts[1], parts[2]))
        self.files = sorted({name for trial in self.trials for name in trial})
        self.first_line = {}  # name: first line naming it, in list order
        for (number, _), trial in zip(rows, self.trials):
            for name in trial:
                self.first_line.setdefault(name, number)
        self.test_path = test_path
        self.listfile = test_list
        check_files_exist(self.paths_with_line_numbers(), test_list, "--test_path")
        if len(set(self.labels)) < 2:
            raise InputError("%s: all %d trials have label %d; an EER needs both target (1) and non-target (0) "
                             "trials" % (test_list, len(self.labels), self.labels[0]))

    def paths_with_line_numbers(self):
        """(first line naming it, path under test_path) of every unique file, in list order."""
        return [(number, os.path.join(self.test_path, name)) for name, number in self.first_line.items()]

    def check_audio(self, progress=True, check_length=None):
        """InputError for the first file (in list order) that is not 16 kHz mono audio with samples
        (or that `check_length(path, samples)` refuses), naming the list, the line and the file: for a
        trainer to call before the first epoch."""
        check_audio_files(self.paths_with_line_numbers(), self.listfile, progress, what="test audio",
                          check_length=check_length)


def leakage_warning(train_list, test_list):
    """The warning to print when the test list shares speakers or files with the train list (None
    when it shares nothing): every score measured on such a test list is better than the model is.

    Speakers: a test file's first path component is its speaker (VoxCeleb's convention, and
    dataprep.py --from_folder's), compared with the train list's speaker labels. Files: both lists'
    paths joined to their roots, the roots' symlinks resolved (once per root, not per file)."""
    def resolved(root, names):
        real_root = os.path.realpath(root)
        return [os.path.normpath(os.path.join(real_root, name)) for name in names]

    train_speakers = set(train_list.speaker_index)
    shared_speakers = sorted({name.replace("\\", "/").split("/", 1)[0] for name in test_list.files}
                             & train_speakers)
    train_files = set(resolved(train_list.train_path, train_list.names))
    shared_files = [name for name, path in zip(test_list.files, resolved(test_list.test_path, test_list.files))
                    if path in train_files]
    if not shared_speakers and not shared_files:
        return None
    found = []
    if shared_speakers:
        found.append("%d speaker(s) (e.g. %s)" % (len(shared_speakers), shared_speakers[0]))
    if shared_files:
        found.append("%d of its %d file(s) (e.g. %s)" % (len(shared_files), len(test_list.files), shared_files[0]))
    return ("train/test leakage: test list %s shares %s with train list %s: every EER and minDCF measured on it "
            "is inflated (the model has seen these speakers); hold them out of training, e.g. with dataprep.py "
            "--make_lists --from_folder" % (test_list.listfile, " and ".join(found), train_list.listfile))


def read_path_list(listfile, root, root_flag, what, min_files=1):
    """Audio paths relative to `root`, one per line (a train list's `speaker path` lines work too),
    as listed; every missing file is counted and the first ones named."""
    rows = read_list(listfile, fields=(1, 2), what=what)
    names = [parts[-1] for _, parts in rows]
    check_files_exist([(number, os.path.join(root, name)) for (number, _), name in zip(rows, names)],
                      listfile, root_flag)
    if len(names) < min_files:
        raise InputError("%s: a %s needs at least %d files, found %d" % (listfile, what, min_files, len(names)))
    return names


def speaker_count(train_list):
    """The number of distinct speakers of a `speaker path` list (no file is checked)."""
    return len({parts[0] for _, parts in read_list(train_list, fields=(2,), what="train list")})


def read_pair_list(listfile, root):
    """--verify_list: `A B` per line, paths relative to `root` (--test_path; absolute paths stay as
    they are) -> [(path A, path B)], every file checked to exist and to be 16 kHz mono audio."""
    rows = read_list(listfile, fields=(2,), what="verify list")
    pairs = [tuple(os.path.join(root, name) for name in parts) for _, parts in rows]
    located = [(number, path) for (number, _), pair in zip(rows, pairs) for path in pair]
    check_files_exist(located, listfile, "--test_path")
    check_audio_files(located, listfile, what="verify audio")
    return pairs
