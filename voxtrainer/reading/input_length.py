"""The shortest audio an embedding network can take, and the checks that keep shorter input out.

Every front end needs some samples: the mel and STFT ones pad by reflecting half an FFT (257
samples at least), the Kaldi fbank of WeSpeaker's networks cuts 400-sample frames without padding,
and the layers behind them shrink time further (VGGVox's strided convolutions and pools, the
standard deviation of statistics pooling over a single frame, which is NaN). Rather than a table
per model, which a new model file or an option (--n_mels, --channels) would silently outdate, the
network itself is asked: `shortest_input` finds by bisection the fewest samples for which one
forward pass gives a finite embedding. Fixed-length crops shorter than that are a flag error
(--max_frames, --eval_frames) and whole files (--eval_frames 0) shorter than that an error naming
the file; the original 2020 trainer crashed on both (torch.stft's "Padding size should be less
than the corresponding input dimension"), so no result of the original changes."""

import warnings

import numpy
import torch

from voxtrainer.reading.audio import SAMPLE_RATE, crop_samples, symmetric_padding, wrap_padding
from voxtrainer.errors import InputError, first_line

LONGEST_PROBE = 8 * SAMPLE_RATE  # a network that cannot embed 8 s cannot be trained on VoxCeleb crops
PROBE_SEED = 0
FIRST_PROBE = 512


def embeds(module, samples, device):
    """Whether one forward pass of `samples` of noise through `module` gives a finite output."""
    noise = torch.from_numpy(numpy.random.RandomState(PROBE_SEED).randn(1, samples).astype(numpy.float32) * 1000)
    try:
        out = module(noise.to(device))
    except (RuntimeError, ValueError, IndexError):
        return False
    return bool(torch.isfinite(out).all())


@torch.no_grad()
def shortest_input(module, description, longest=LONGEST_PROBE):
    """The fewest samples `module` (an embedding network: (batch, samples) -> (batch, nOut)) embeds
    to finite values, in eval mode (the mode is restored; no random state is drawn). InputError
    naming `description` (the model and its options) when even `longest` samples fail."""
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's "degrees of freedom <= 0" of a one-frame std
            return bisect_shortest(module, description, longest, device)
    finally:
        module.train(was_training)


def bisect_shortest(module, description, longest, device):
    """shortest_input's search: doubling from FIRST_PROBE samples to the first length that embeds
    (short probes are cheap), then bisection below it."""
    low, high = 0, min(FIRST_PROBE, longest)  # low fails (or is nothing)
    while not embeds(module, high, device):
        if high >= longest:
            raise InputError("%s cannot embed even %g s of audio (%s): check its options" % (
                description, longest / SAMPLE_RATE, first_failure(module, longest, device)))
        low, high = high, min(2 * high, longest)
    while high - low > 1:
        middle = (low + high) // 2
        if embeds(module, middle, device):
            high = middle
        else:
            low = middle
    return high


def first_failure(module, samples, device):
    """The first line of what goes wrong embedding `samples` samples (a non-finite output included)."""
    try:
        out = module(torch.zeros(1, samples, device=device))
    except (RuntimeError, ValueError, IndexError) as error:
        return first_line(error, type(error).__name__)
    return "its output is not finite" if not torch.isfinite(out).all() else "it fails on noise"


def check_crop_frames(frames, flag, shortest, model):
    """InputError naming `flag` when its crops of `frames` frames are shorter than `shortest` samples
    (frames 0, a whole-file evaluation, is checked per file: check_whole_file)."""
    if frames and crop_samples(frames) < shortest:
        raise InputError("%s %d: crops of %d samples, but --model %s needs at least %d samples (%s %d or more)" % (
            flag, frames, crop_samples(frames), model, shortest, flag, frames_for(shortest)))


def frames_for(samples):
    """The fewest frames whose crops hold `samples` samples."""
    return max(1, -(-(samples - crop_samples(0)) // 160))


def whole_file_length(num_samples, protocol):
    """The samples a whole-file evaluation feeds for a file of `num_samples`: the original's padding
    to one 0-frame crop (240 samples) included (voxtrainer.reading.audio.pad_for_protocol)."""
    max_audio = crop_samples(0)
    if protocol == "2021":
        return num_samples + wrap_padding(num_samples, max_audio)
    return num_samples + 2 * symmetric_padding(num_samples, max_audio)


def check_whole_file(path, num_samples, protocol, shortest, model):
    """InputError naming `path` when its whole-file input (--eval_frames 0) is too short for the model."""
    if whole_file_length(num_samples, protocol) < shortest:
        raise InputError("%s: %d samples (%.3f s), shorter than the %d samples --model %s needs to embed a whole "
                         "file (--eval_frames 0); leave it out, or evaluate fixed-length crops (--eval_frames %d "
                         "or more pads short files)" % (path, num_samples, num_samples / SAMPLE_RATE, shortest,
                                                        model, frames_for(shortest)))


def whole_file_checker(eval_frames, protocol, shortest, model):
    """check_whole_file as a `check_length(path, samples)` for voxtrainer.reading.lists.check_audio_files:
    None when the evaluation cuts fixed-length crops (eval_frames > 0), which pad short files."""
    if eval_frames:
        return None
    return lambda path, num_samples: check_whole_file(path, num_samples, protocol, shortest, model)
