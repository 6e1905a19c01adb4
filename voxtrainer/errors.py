"""The one user-error type, and the one way a command line reports it."""

import sys


class InputError(Exception):
    """A problem with the user's files, flags or machine: reported as one line, never a traceback.

    When raised inside a DataLoader worker, torch re-raises it in the main process with the
    worker's traceback prepended; the last line of the text is still our message.
    """

    @property
    def line(self):
        text = str(self).strip()
        last = text.splitlines()[-1] if text else ""
        prefix = type(self).__name__ + ": "
        return last[len(prefix):] if last.startswith(prefix) else last


def run_command(action, prefix, error_status, interrupted_message):
    """Exit status of `action()`: 0, `error_status` after printing `<prefix>error: <line>` for an
    InputError, 130 after printing `<prefix><interrupted_message>` (a string, or a function giving
    one) for Ctrl-C (or SIGTERM turned into KeyboardInterrupt). An InputError class may carry its own
    `exit_status` (dataprep.py's bad-input errors exit 2, as the trainer's do, its failed steps 1)."""
    try:
        action()
    except InputError as error:
        print("%serror: %s" % (prefix, error.line), file=sys.stderr)
        return getattr(error, "exit_status", None) or error_status
    except KeyboardInterrupt:
        message = interrupted_message() if callable(interrupted_message) else interrupted_message
        print("%s%s" % (prefix, message), file=sys.stderr)
        return 130
    return 0


OUT_OF_MEMORY_SIGNS = ("can't allocate memory", "out of memory", "Unable to allocate")


def out_of_memory_line(error):
    """One line for an allocation that failed (Python's MemoryError, numpy's, torch's CPU allocator
    and CUDA's), naming the sizes that flags set; None for any other error."""
    text = first_line(error, type(error).__name__)
    if not isinstance(error, MemoryError) and not any(sign in text for sign in OUT_OF_MEMORY_SIGNS):
        return None
    import re
    size = re.search(r"(?i)allocate\s+([\d.]+\s*[KMGTP]?i?B\b|\d+ bytes)", text)
    asked = " of %s" % size.group(1) if size else ""
    return ("out of memory: an allocation%s failed; lower what the flags ask for (--batch_size, --max_frames, "
            "--eval_frames, --nClasses, --nOut, --subcenters)" % asked)


def first_line(error, default=""):
    """The first line of an exception's message (`default` when it has none): error lines stay
    one line even when a library's message runs to many."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else default
