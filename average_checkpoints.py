"""--average_last N: the element-wise mean of the last N saved models, as WeSpeaker averages
checkpoints before its final evaluation. The result keeps the original checkpoint format."""

import os

import torch

from DatasetLoader import InputError
from SpeakerNet import atomic_torch_save


def load_state(path):
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InputError("%s: not a readable checkpoint (%s)" % (path, first))
    if not isinstance(state, dict) or not all(torch.is_tensor(value) for value in state.values()):
        raise InputError("%s: not a state_dict checkpoint of tensors" % path)
    return state


def average_state_dicts(paths):
    """Floating-point tensors are averaged (in float64); integer ones (BatchNorm's
    num_batches_tracked) are a count, not a weight, and keep the newest model's value."""
    newest = load_state(paths[-1])
    sums = {name: value.double() for name, value in newest.items() if value.is_floating_point()}
    for path in paths[:-1]:
        state = load_state(path)
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


def run_average(model_files, count, save_path):
    """Average the newest `count` of `model_files` (sorted by epoch) into
    <save_path>/model/average_last<count>.model; returns its path."""
    if count < 1:
        raise InputError("--average_last %d: give the number of saved models to average (>= 1)" % count)
    if len(model_files) < count:
        raise InputError("--average_last %d: only %d saved model(s) in %s" % (
            count, len(model_files), os.path.join(save_path, "model")))
    chosen = model_files[-count:]
    out = os.path.join(save_path, "model", "average_last%d.model" % count)
    atomic_torch_save(average_state_dicts(chosen), out)
    print("Averaged %d models (%s ... %s) into %s" % (count, os.path.basename(chosen[0]),
                                                      os.path.basename(chosen[-1]), out))
    return out
