"""The list files: train lists (`speaker path`), test lists (`label enrol test`) and plain path
lists; every bad line or missing file is an InputError naming the file and line."""

import os
import random

from voxtrainer.errors import InputError


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
