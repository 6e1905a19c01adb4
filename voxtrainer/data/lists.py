"""The lists dataprep.py reads and writes: fileparts.txt (`url md5`, what to download), files.txt
(`parts-glob joined.zip md5`, how to join the parts) and the train_list.txt it builds from the
converted files when the official one is not wanted (the trainer reads it with voxtrainer.reading.lists).

A list with a bad line is refused whole, before anything is fetched."""

import os
import re

from voxtrainer.data.urls import check_url, redact_url
from voxtrainer.data.report import DataprepError, note
from voxtrainer.reading.lists import read_list


def read_fileparts(path):
    """`url md5` per line -> [(url, md5)]."""
    rows = [(fields[0], fields[1]) for fields in _read_list(path, 2)]
    for url, _ in rows:
        check_url(url, f"in {path}")
    return rows


def read_files(path):
    """`parts-glob joined.zip md5` per line -> [(glob, joined, md5)]."""
    return [tuple(fields) for fields in _read_list(path, 3)]


def _read_list(path, n_fields):
    rows = []
    for number, fields in read_list(str(path), None, "list", error=DataprepError, comments=True, empty_ok=True):
        if len(fields) != n_fields or not re.fullmatch(r"[0-9a-fA-F]{32}", fields[-1]):
            # The line may hold a URL with a password in it (which read_fileparts would refuse).
            raise DataprepError(f"{path}:{number}: expected {n_fields} fields ending in an md5 sum, "
                                f"got {redact_url(' '.join(fields))!r}")
        rows.append(fields[:-1] + [fields[-1].lower()])
    return rows


def make_train_list(save_path):
    """DIR/train_list.txt (`idXXXXX idXXXXX/clip/00001.wav`, sorted) from DIR/voxceleb2/*/*/*.wav."""
    root = save_path / "voxceleb2"
    utterances = sorted(path.relative_to(root).as_posix() for path in root.glob("id*/*/*.wav"))
    if not utterances:
        raise DataprepError(f"no {root}/idXXXXX/*/*.wav files: run --extract and --convert first")
    dest = save_path / "train_list.txt"
    if dest.exists():
        note(f"replacing {dest}")
    temporary = dest.with_name(dest.name + ".partial")
    temporary.write_text("".join(f"{path.split('/', 1)[0]} {path}\n" for path in utterances))
    os.replace(temporary, dest)
    speakers = len({path.split("/", 1)[0] for path in utterances})
    print(f"wrote {dest}: {len(utterances)} utterances of {speakers} speakers")
