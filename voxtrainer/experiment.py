"""The experiment folder (--save_path): checked before any work, owned by one training run at a
time, and cleaned of what killed runs left behind."""

import contextlib
import fcntl
import os

from voxtrainer import log
from voxtrainer.atomic import remove_stale_temporaries
from voxtrainer.errors import InputError

LOCK_FILE = ".lock"


def prepare_folder(save_path, subfolders=("model", "result")):
    """Create the subfolders of save_path; InputError now, before hours of work, when that is
    impossible (a file in the way, no permission, a read-only disk)."""
    for sub in subfolders:
        folder = os.path.join(save_path, sub)
        try:
            os.makedirs(folder, exist_ok=True)
            probe = os.path.join(folder, ".write-test%d" % os.getpid())
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as error:
            raise InputError("--save_path %s: cannot write in %s (%s)" % (save_path, folder, error.strerror))
    for sub in subfolders:
        for path in remove_stale_temporaries(os.path.join(save_path, sub)):
            log.info("Removed %s, left by a process killed while writing it" % path)


@contextlib.contextmanager
def exclusive_run(save_path):
    """Hold save_path/.lock for the block: a second training run on the same folder is refused
    while the first is alive. The lock is the kernel's (flock), so it dies with its process and a
    dead run's lock is simply taken over; the file holds the owner's pid for the message."""
    handle = open(os.path.join(save_path, LOCK_FILE), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise InputError("--save_path %s is in use by another training run (pid %s); wait for it to end or use "
                         "another --save_path" % (save_path, owner))
    try:
        handle.seek(0)
        handle.truncate()
        handle.write("%d\n" % os.getpid())
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
