"""How the data steps speak to the user: DataprepError for a failure the user can fix (one line, no
traceback), note() for a warning that does not stop the step, byte_bar() for progress.

Messages go through tqdm so that they never tear a progress bar apart."""

import sys

from tqdm import tqdm

from voxtrainer.errors import InputError


class DataprepError(InputError):
    """An expected failure: reported as one line, without a traceback."""


class BadInput(DataprepError):
    """The user's own files or flags are wrong (exit status 2, as a usage error): fixing them, not
    re-running, is what helps."""

    exit_status = 2


def format_bytes(count):
    """`count` bytes for a message: "0 bytes", "512 bytes", "3.4 kB", "1.2 MB", "8.3 GB" (powers of 1000)."""
    if count < 1000:
        return f"{count} byte" if count == 1 else f"{count} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        count /= 1000
        if count < 1000 or unit == "TB":
            return f"{count:.1f} {unit}"


def note(message):
    tqdm.write(message, file=sys.stderr)


def byte_bar(desc, total=None, initial=0):
    """A progress bar in bytes that disappears when done: the step prints its own summary line."""
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                leave=False)
