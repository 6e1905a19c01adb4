"""Every output file is written under a temporary name and renamed, so that a crash, a full disk
or kill -9 never leaves a truncated file where a complete one (or none) was."""

import contextlib
import os


@contextlib.contextmanager
def atomic_output(path):
    """A temporary name beside `path` to write to: renamed to `path` when the block ends normally,
    removed when it raises."""
    temporary = "%s.tmp%d" % (path, os.getpid())
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    """`text` into `path`, atomically."""
    with atomic_output(path) as temporary, open(temporary, "w") as handle:
        handle.write(text)


def save_npz(path, **arrays):
    """numpy.savez into `path`, atomically (its folder created when missing)."""
    import numpy
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        numpy.savez(handle, **arrays)  # a handle, not a name: savez would append .npz to a name
