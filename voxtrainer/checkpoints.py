"""Checkpoints: the one reader and loading policy, the original `.model` format, the training
state saved beside it (declared once, saved and restored from that one declaration), and averaging.

A `.model` file is the original's: SpeakerNet's state_dict (`__S__.*` the embedding network,
`__L__.*` the loss head). `model%09d.state` beside it holds what resuming needs; the original
trainer ignores it. Everything is read with weights_only=True: no code in a file is ever run."""

import os
import random
from typing import Callable, NamedTuple

import torch

from voxtrainer import log
from voxtrainer.atomic import atomic_output, write_failure
from voxtrainer.errors import InputError, first_line
from voxtrainer.experiment import ExperimentFolder
from voxtrainer.wespeaker_models import describe, identify


class DamagedCheckpoint(InputError):
    """A checkpoint file that cannot be read (truncated, corrupt, not a checkpoint)."""


def read_state_dict(path):
    """A checkpoint's tensors by name, a DataParallel `module.` prefix removed, a WeSpeaker
    checkpoint mapped to this format (`wespeaker_state`); InputError naming the file when it is
    missing, unreadable or not a state_dict."""
    return read_checkpoint(path)[0]


def read_checkpoint(path):
    """(read_state_dict's tensors, whether the file was a plain model state_dict as WeSpeaker saves)."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("%s: checkpoint not found" % path)
    except Exception as error:  # torch raises many types for foreign or corrupt files
        first = first_line(error, type(error).__name__)
        raise DamagedCheckpoint("%s: not a readable checkpoint (%s)" % (path, first))
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # WeSpeaker's loader accepts this wrapping too
    if not isinstance(loaded, dict) or not all(torch.is_tensor(value) for value in loaded.values()):
        raise DamagedCheckpoint("%s: not a state_dict checkpoint of tensors" % path)
    state = {name[len("module."):] if name.startswith("module.") else name: value for name, value in loaded.items()}
    if state and not any(name.startswith(("__S__.", "__L__.")) for name in state):
        return wespeaker_state(state), True
    return state, False


def wespeaker_state(state):
    """A WeSpeaker checkpoint (avg_model.pt: the embedding model's own state_dict, plus the
    training head `projection.*`) as this project's: the model under `__S__.`, the head dropped
    (its classes are WeSpeaker's training speakers, no loss here fits it). WeSpeaker averages
    checkpoints including the BatchNorm counters, which leaves num_batches_tracked a float: it is
    a count, made one again."""
    mapped = {}
    for name, value in state.items():
        if name.startswith("projection."):
            continue
        if name.endswith("num_batches_tracked") and value.is_floating_point():
            value = value.round().long()
        mapped["__S__." + name] = value
    return mapped


def atomic_torch_save(obj, path):
    with atomic_output(path) as temporary:
        try:
            torch.save(obj, temporary)
        except RuntimeError as error:  # how torch.save reports a failed write, a full disk included
            raise InputError(write_failure(path, error)) from error


def save_state_dict(module, path):
    """The original format, contiguous tensors whatever the in-memory layout."""
    atomic_torch_save({name: value.contiguous() for name, value in module.state_dict().items()}, path)


def load_parameters(module, path, required_prefix="__S__.", fresh_head=False):
    """Copy a checkpoint into `module`. Every tensor under `required_prefix` (the embedding
    network) must be there with the right shape, else InputError naming the file and the first
    mismatches; the rest (the loss head, which evaluation does not use) keeps its values with a
    warning when it does not fit, as the original did. With `fresh_head` (--finetune) the
    checkpoint's head is not read at all: the module's own, newly initialised head is kept,
    whatever loss and class count either has, and the log says what was loaded and what not."""
    loaded, plain = read_checkpoint(path)
    skipped_head = []
    if fresh_head or getattr(module, "__L__", True) is None:
        # A network without a loss (--eval/--extract/--export without --trainfunc) ignores the head.
        skipped_head = [name for name in loaded if name.startswith("__L__.")]
        loaded = {name: value for name, value in loaded.items() if not name.startswith("__L__.")}
    if required_prefix and not any(name.startswith(required_prefix) for name in loaded):
        raise InputError("%s: holds no embedding network (no %s* tensors%s), which %s" % (
            path, required_prefix, ", only a loss head" if skipped_head else "",
            "--finetune starts from" if fresh_head else "evaluation and training start from"))
    own = module.state_dict()
    problems = {"missing": [name for name in own if name not in loaded],
                "unexpected": [name for name in loaded if name not in own],
                "mis-shaped": ["%s %s, model wants %s" % (name, tuple(value.shape), tuple(own[name].shape))
                               for name, value in loaded.items() if name in own and own[name].shape != value.shape]}
    required = {kind: [name for name in names if name.startswith(required_prefix)] for kind, names in problems.items()}
    if any(required.values()):
        details = "; ".join("%s: %s" % (kind, ", ".join(names[:3]) + (" ..." if len(names) > 3 else ""))
                            for kind, names in required.items() if names)
        flags = "--model/--encoder_type/--nOut" + ("" if required_prefix else "/--trainfunc/--nClasses")
        held = wespeaker_network_held(loaded)
        if plain:
            raise InputError("%s: a WeSpeaker checkpoint (a plain model state_dict) of another architecture than "
                             "this --model/--channels/--variant/--nOut: it holds %s (%s)" % (
                                 path, describe(held), details))
        if identify(held):  # this project's checkpoint of a WeSpeaker network: name it too
            details = "it holds %s; %s" % (describe(held), details)
        raise InputError("%s: does not fit this %s (%s)" % (path, flags, details))
    non_finite = [name for name, value in loaded.items() if name.startswith(required_prefix)
                  and value.is_floating_point() and not torch.isfinite(value).all()]
    if non_finite:
        raise InputError("%s: holds NaN or infinite weights (%s), as a diverged training leaves them; use an "
                         "earlier checkpoint" % (path, ", ".join(non_finite[:3]) + (" ..." if len(non_finite) > 3
                                                                                     else "")))
    optional = [name.split(" ")[0] for names in problems.values() for name in names]
    if fresh_head:
        own_head = [name for name in own if name.startswith("__L__.")]
        log.info("Fine-tuning from %s: loaded the embedding network (%d tensors under __S__.); the loss head is "
                 "newly initialised (%d tensors under __L__., %d values), the checkpoint's (%d tensors) not read" % (
                     path, sum(name.startswith("__S__.") for name in loaded), len(own_head),
                     sum(own[name].numel() for name in own_head), len(skipped_head)))
        optional = [name for name in optional if not name.startswith("__L__.")]
    if optional:
        log.warning("%s: loss-head parameters do not fit --trainfunc/--nClasses (%s); they keep their initial "
                    "values (evaluation does not use them)" % (path, ", ".join(optional[:4])))
    with torch.no_grad():
        for name, value in loaded.items():
            if name in own and own[name].shape == value.shape:
                own[name].copy_(value)


def wespeaker_network_held(loaded):
    """The embedding network's tensor shapes by WeSpeaker's key names (the `__S__.` prefix off),
    for naming what a refused checkpoint holds (voxtrainer.wespeaker_models)."""
    return {name[len("__S__."):]: tuple(value.shape) for name, value in loaded.items() if name.startswith("__S__.")}


# ---------------------------------------------------------------------------------------------
# The training state of a run

class StatePart(NamedTuple):
    get: Callable
    set: Callable


def training_state(optimizer, scheduler, scaler, settings):
    """Everything besides the weights that a resumed run needs to continue bit-identically, by
    the name it has in the `.state` file; `settings` (voxtrainer.training.resume_settings: those that change
    training) are compared with the saved run's, which refuses or warns."""
    from voxtrainer.training.resume_settings import check_resumed_settings
    parts = {
        "run": StatePart(lambda: dict(settings), lambda saved: check_resumed_settings(saved, settings)),
        "optimizer": StatePart(optimizer.state_dict, lambda saved: load_fitting_state(
            optimizer, saved, "--optimizer", lambda state: {key for group in state["param_groups"] for key in group})),
        "scheduler": StatePart(scheduler.state_dict, lambda saved: load_fitting_state(
            scheduler, saved, "--scheduler", set)),
        "scaler": StatePart(scaler.state_dict, scaler.load_state_dict),
        "torch_rng": StatePart(torch.get_rng_state, torch.set_rng_state),
        "python_rng": StatePart(random.getstate, random.setstate),
    }
    if torch.cuda.is_available():
        parts["cuda_rng"] = StatePart(torch.cuda.get_rng_state_all, torch.cuda.set_rng_state_all)
    return parts


def load_fitting_state(owner, saved, flag, keys):
    """owner.load_state_dict(saved), unless the saved state is another kind's (a .state of before
    the optimizer and scheduler were saved by name: voxtrainer.training.resume_settings): its `keys` both
    lack some of the owner's own and hold others, as SGD's and Adam's settings do. A state that only
    lacks or only adds some (another torch version's) is loaded."""
    own, theirs = keys(owner.state_dict()), keys(saved)
    if own - theirs and theirs - own:
        raise InputError("cannot resume: the saved %s state is not of this %s (%s): it holds %s and lacks %s; "
                         "use another --save_path for a new run" % (
                             flag[2:], flag, type(owner).__name__, ", ".join(sorted(map(str, theirs - own))[:3]),
                             ", ".join(sorted(map(str, own - theirs))[:3])))
    owner.load_state_dict(saved)


def save_checkpoint(net, state_parts, epoch, path, records=None):
    """Training state first, then the model (`path`, an epoch's ExperimentFolder.model_file): the
    newest .model always has a complete .state. `records`: more entries of the .state that resuming
    reads but does not restore (the epoch's figures: voxtrainer.training.epoch_results)."""
    state = {"epoch": torch.tensor(epoch), **{name: part.get() for name, part in state_parts.items()},
             **(records or {})}
    atomic_torch_save(state, ExperimentFolder.state_file(path))
    save_state_dict(net, path)
    return path


def read_training_state(model_path):
    """The .state beside a .model, or None for a model of the original trainer (which has none)."""
    path = ExperimentFolder.state_file(model_path)
    if not os.path.isfile(path):
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # as read_state_dict: a truncated or foreign file
        raise DamagedCheckpoint("%s: not a readable training state (%s)" % (
            path, first_line(error, type(error).__name__)))


def restore_checkpoint(net, state_parts, model_path):
    """Load `model_path`, every tensor of it (the loss head too: a resumed run must be the same
    run), and the training state beside it. Returns whether there was a training state."""
    state = read_training_state(model_path)
    if state is not None and "run" in state_parts and "run" in state:
        state_parts["run"].set(state["run"])  # before the weights: a mismatch is named as such
    load_parameters(net, model_path, required_prefix="")
    if state is None:
        return False
    for name, part in state_parts.items():
        if name in state and name != "run":
            part.set(state[name])
    return True


# ---------------------------------------------------------------------------------------------
# Averaging

def average_state_dicts(paths):
    """Floating-point tensors are averaged (in float64); integer ones (BatchNorm's
    num_batches_tracked) are a count, not a weight, and keep the newest model's value."""
    newest = read_state_dict(paths[-1])
    sums = {name: value.double() for name, value in newest.items() if value.is_floating_point()}
    for path in paths[:-1]:
        state = read_state_dict(path)
        if set(state) != set(newest):
            raise InputError("%s: its tensors differ from those of %s (another --model?); average models of "
                             "one training run" % (path, paths[-1]))
        for name, total in sums.items():
            if state[name].shape != total.shape:
                raise InputError("%s: %s has shape %s, %s has %s" % (
                    path, name, tuple(state[name].shape), paths[-1], tuple(total.shape)))
            total += state[name].double()
    return {name: (sums[name] / len(paths)).to(value.dtype) if name in sums else value
            for name, value in newest.items()}


def average_last(folder, count):
    """Average the newest `count` models of a run (an ExperimentFolder) into its
    model/average_last<count>.model, as WeSpeaker averages checkpoints before its final evaluation;
    returns its path."""
    if count < 1:
        raise InputError("--average_last %d: give the number of saved models to average (>= 1)" % count)
    saved = folder.model_files()
    if len(saved) < count:
        raise InputError("--average_last %d: only %d saved model(s) in %s" % (count, len(saved), folder.model_dir))
    chosen = saved[-count:]
    out = folder.average_file(count)
    atomic_torch_save(average_state_dicts(chosen), out)
    log.info("Averaged %d models (%s ... %s) into %s" % (count, os.path.basename(chosen[0]),
                                                        os.path.basename(chosen[-1]), out))
    return out
