"""How the data steps speak to the user: DataprepError for a failure the user can fix (one line, no
traceback), note() for a warning that does not stop the step, byte_bar() for progress.

Messages go through tqdm so that they never tear a progress bar apart."""

import sys

from tqdm import tqdm

from voxtrainer.errors import InputError


class DataprepError(InputError):
    """An expected failure: reported as one line, without a traceback."""


def note(message):
    tqdm.write(message, file=sys.stderr)


def byte_bar(desc, total=None, initial=0):
    """A progress bar in bytes that disappears when done: the step prints its own summary line."""
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                leave=False)
