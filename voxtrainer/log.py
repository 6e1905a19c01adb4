"""What the trainer says: progress on stdout, warnings on stderr, and during a training run the
same lines appended, with times, to save_path/result/train.log, so the experiment folder keeps
its own story."""

import contextlib
import logging
import sys

logger = logging.getLogger("voxtrainer")
logger.setLevel(logging.INFO)
logger.propagate = False


class ConsoleHandler(logging.Handler):
    """Writes to whatever sys.stdout / sys.stderr are at the time (test runners replace them)."""

    def emit(self, record):
        warning = record.levelno >= logging.WARNING
        stream = sys.stderr if warning else sys.stdout
        stream.write(("WARNING: " if warning else "") + record.getMessage() + "\n")
        stream.flush()


CONSOLE = ConsoleHandler()
logger.addHandler(CONSOLE)


def quiet_console(quiet):
    """Only warnings on the console (ranks other than 0 under --distributed), or everything."""
    CONSOLE.setLevel(logging.WARNING if quiet else logging.NOTSET)


@contextlib.contextmanager
def log_file(path):
    """Messages are also appended to `path` for the block."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def info(message):
    logger.info(message)


def warning(message):
    logger.warning(message)
