"""Models, losses, optimizers and schedulers chosen by name: `--model X` is `models/X.py` with
`MainModel`, likewise `loss/` with `LossFunction`, `optimizer/` with `Optimizer` and
`scheduler/` with `Scheduler`. A new one is one new file."""

import importlib
import os
import pkgutil

from voxtrainer.errors import InputError

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = {"models": "MainModel", "loss": "LossFunction", "optimizer": "Optimizer", "scheduler": "Scheduler"}
FLAGS = {"models": "--model", "loss": "--trainfunc", "optimizer": "--optimizer", "scheduler": "--scheduler"}


def plugin_names(package):
    """The modules of `package` that define its entry point."""
    folder = os.path.join(REPOSITORY, package)
    return sorted(info.name for info in pkgutil.iter_modules([folder])
                  if hasattr(importlib.import_module("%s.%s" % (package, info.name)), ENTRY_POINTS[package]))


def load_plugin(package, name):
    """`package/<name>.py`'s entry point (e.g. a model's MainModel); InputError listing the valid names."""
    entry_point = ENTRY_POINTS[package]
    if name and os.sep not in name and "." not in name and os.path.isfile(os.path.join(REPOSITORY, package,
                                                                                       name + ".py")):
        module = importlib.import_module("%s.%s" % (package, name))
        if hasattr(module, entry_point):
            return getattr(module, entry_point)
    raise InputError("unknown %s %r: valid names are %s (%s/<name>.py)" % (
        FLAGS[package], name, ", ".join(plugin_names(package)), package))


def model_protocol(name):
    """The audio protocol (voxtrainer/reading/audio.py) a model reads by default: its file's `PROTOCOL`,
    "2020" for a model file that names none."""
    load_plugin("models", name)
    return getattr(importlib.import_module("models.%s" % name), "PROTOCOL", "2020")
