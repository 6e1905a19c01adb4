"""The experiment folder (--save_path) and every path in it, named here once: the models and their
training states and EERs (model/), the score log, training log, figures and evaluation outputs
(result/), the resolved settings (config.yaml) and the lock of the training run that owns it. It
is checked before any work and cleaned of what killed runs left behind."""

import contextlib
import fcntl
import glob
import os

from voxtrainer import log
from voxtrainer.atomic import remove_stale_temporaries
from voxtrainer.errors import InputError

MODEL_PREFIX = "model"  # model%09d.model, as the seed names its checkpoints


class ExperimentFolder:
    def __init__(self, save_path):
        self.root = save_path
        self.model_dir = os.path.join(save_path, "model")
        self.result_dir = os.path.join(save_path, "result")
        self.config_file = os.path.join(save_path, "config.yaml")
        self.lock_file = os.path.join(save_path, ".lock")
        self.scores_file = self.result("scores.txt")
        self.log_file = self.result("train.log")
        self.curves_png, self.curves_json = self.result("curves.png"), self.result("curves.json")

    # -- model/ ---------------------------------------------------------------------------------
    def model_file(self, epoch):
        return os.path.join(self.model_dir, "%s.model" % self.epoch_name(epoch))

    def eer_file(self, epoch):
        return os.path.join(self.model_dir, "%s.eer" % self.epoch_name(epoch))

    def average_file(self, count):
        return os.path.join(self.model_dir, "average_last%d.model" % count)

    def model_files(self):
        """The run's epoch `.model` files, oldest epoch first."""
        return sorted(glob.glob(os.path.join(self.model_dir, MODEL_PREFIX + "0*.model")))

    def newest_model(self):
        """The newest epoch's `.model`, or None."""
        return (self.model_files() or [None])[-1]

    @staticmethod
    def epoch_name(epoch):
        """model%09d: the stem of an epoch's files (its model, EER, state and score figures)."""
        return "%s%09d" % (MODEL_PREFIX, epoch)

    @staticmethod
    def epoch_of(model_file):
        return int(os.path.splitext(os.path.basename(model_file))[0][len(MODEL_PREFIX):])

    @staticmethod
    def state_file(model_file):
        """The training state beside a `.model` (the original trainer ignores it)."""
        return os.path.splitext(model_file)[0] + ".state"

    # -- result/ --------------------------------------------------------------------------------
    def result(self, name):
        return os.path.join(self.result_dir, name)

    # -- the folder as a whole -----------------------------------------------------------------
    def prepare(self, subfolders=("model", "result")):
        """Create the subfolders; InputError now, before hours of work, when that is impossible (a
        file in the way, no permission, a read-only disk)."""
        for sub in subfolders:
            folder = os.path.join(self.root, sub)
            try:
                os.makedirs(folder, exist_ok=True)
                probe = os.path.join(folder, ".write-test%d" % os.getpid())
                with open(probe, "w"):
                    pass
                os.remove(probe)
            except OSError as error:
                raise InputError("--save_path %s: cannot write in %s (%s)" % (self.root, folder, error.strerror))
        for sub in subfolders:
            for path in remove_stale_temporaries(os.path.join(self.root, sub)):
                log.info("Removed %s, left by a process killed while writing it" % path)

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the folder's lock for the block: a second training run on the same folder is
        refused while the first is alive. The lock is the kernel's (flock), so it dies with its
        process and a dead run's lock is simply taken over; the file holds the owner's pid for the
        message."""
        handle = open(self.lock_file, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise InputError("--save_path %s is in use by another training run (pid %s); wait for it to end or "
                             "use another --save_path" % (self.root, owner))
        try:
            handle.seek(0)
            handle.truncate()
            handle.write("%d\n" % os.getpid())
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
