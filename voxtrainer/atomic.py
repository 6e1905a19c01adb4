"""Every output file is written under a temporary name and renamed, so that a crash, a full disk
or kill -9 never leaves a truncated file where a complete one (or none) was."""

import contextlib
import errno
import os
import re
import shutil

from voxtrainer.errors import InputError, first_line

TEMPORARY = re.compile(r"\.tmp(\d+)$")


@contextlib.contextmanager
def atomic_output(path):
    """A temporary name beside `path` to write to: renamed to `path` when the block ends normally,
    removed when it raises. A failed write (a full disk, a read-only folder) is an InputError
    naming the file: the previous version, if any, is unchanged."""
    temporary = "%s.tmp%d" % (path, os.getpid())
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise InputError(write_failure(path, error)) from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_failure(path, error):
    """One line on why `path` could not be written, with the free space of its disk."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    reason = getattr(error, "strerror", None) or first_line(error, type(error).__name__)
    if free is not None and free < (1 << 20):
        reason = "the disk is full"
    space = "" if free is None else ", %.1f MB free there" % (free / 1e6)
    return "cannot write %s (%s%s); the previous file, if any, is unchanged" % (path, reason, space)


def make_parent_folder(path):
    """Create the missing folders above `path`; InputError naming it when a file is in the way."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as error:
        raise InputError(write_failure(path, error)) from error


def check_writable(path, flag):
    """InputError naming `flag` and `path` when no file can be written there (a folder in its place,
    a file where one of its folders should be, no permission), for a command to call before the
    work whose result it is; missing folders are created, as the writers would."""
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "a folder is in its place")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        probe = "%s.tmp%d" % (path, os.getpid())  # a name remove_stale_temporaries knows
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise InputError("%s %s: cannot write there (%s)" % (
            flag, path, error.strerror or first_line(error, type(error).__name__))) from error


def write_text(path, text):
    """`text` into `path`, atomically."""
    with atomic_output(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)


def save_npz(path, **arrays):
    """numpy.savez into `path`, atomically (its folder created when missing)."""
    import numpy
    make_parent_folder(path)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        numpy.savez(handle, **arrays)  # a handle, not a name: savez would append .npz to a name


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def remove_stale_temporaries(folder):
    """Remove the temporary files that processes killed mid-write (kill -9) left in `folder`;
    those of running processes stay. Returns the removed paths."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        match = TEMPORARY.search(name)
        if match and not process_alive(int(match.group(1))):
            os.remove(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed
