"""Training-time perturbations of today's recipes (WeSpeaker's VoxCeleb recipe), applied to the
training crops in the loader workers and drawn from each group's crop seed; all off by default.

* Speed perturbation (--speed_perturb): a crop played at 0.9, 1.0 or 1.1 times its speed (tempo and
  pitch, as sox's `speed` effect followed by `rate`), each speed of a speaker being its own class:
  speaker s at speed index i is class s + i * num_classes, WeSpeaker's mapping
  (wespeaker/dataset/processor.py, speed_perturb: `label + num_spks * speed_idx`, speeds
  [1.0, 0.9, 1.1]), so the loss head has 3 x num_classes classes (wespeaker/bin/train.py). WeSpeaker
  draws a speed per utterance; here it is drawn per group (the utterances of one speaker that a
  metric loss compares), so that a group has one class and its crops stay comparable.
* Dither (--dither D): x + D * N(0, 1) in int16 units, Kaldi's dither (WeSpeaker's fbank_args
  dither 1.0 in training, 0 when extracting), added to the whole crop rather than to each 25 ms
  frame as Kaldi does (overlapping frames share their noise here): same level, never in evaluation.
"""

import math

import numpy
from scipy import signal

from voxtrainer.reading.audio import INT16_SCALE, crop_samples, load_random_crop, load_random_samples

SPEEDS = (1.0, 0.9, 1.1)  # WeSpeaker's order: the index is the class block
# (up, down) of each speed's polyphase resampling: `down` input samples become `up` output samples,
# i.e. the crop lasts 1 / speed as long.
RESAMPLING = {0.9: (10, 9), 1.1: (10, 11)}
# Samples read beyond each end of the stretch a crop is resampled from, in units of `down`: more than
# the reach of resample_poly's filter (10 * max(up, down) / up input samples), so that the crop's
# ends are computed from the file's neighbouring samples, as when the whole file is resampled.
MARGIN_STEPS = 2


def speed_perturbed_classes(num_classes):
    """Classes of the loss head under speed perturbation: one block of num_classes per speed."""
    return num_classes * len(SPEEDS)


def speed_class(label, speed_index, num_classes):
    """WeSpeaker's class of speaker `label` at SPEEDS[speed_index]."""
    return label + speed_index * num_classes


def draw_speed(rng):
    """A speed index, uniformly (WeSpeaker: random.randint(0, 2))."""
    return rng.randrange(len(SPEEDS))


def load_speed_crop(filename, max_frames, speed_index, rng, protocol="2020", padding=None):
    """A training crop of the file played at SPEEDS[speed_index]: at 1.0 the plain crop
    (load_random_crop, the same draw); otherwise a random stretch of ceil(crop * speed) input samples
    (plus MARGIN_STEPS * down each side; a short file padded as `padding`, before resampling) resampled
    to exactly one crop. WeSpeaker resamples the whole file and then cuts the crop; resampling just
    the stretch costs a crop's worth of work and gives the same samples away from the file's ends."""
    speed = SPEEDS[speed_index]
    if speed == 1.0:
        return load_random_crop(filename, max_frames, rng, protocol, padding)
    up, down = RESAMPLING[speed]
    length = crop_samples(max_frames)
    margin = MARGIN_STEPS * down
    stretch = load_random_samples(filename, math.ceil(length * down / up) + 2 * margin, rng, protocol, padding)
    resampled = signal.resample_poly(stretch, up, down)
    first = MARGIN_STEPS * up  # the output sample at input sample `margin`
    return resampled[first:first + length].astype(numpy.float32)


def dither(crops, amount, rng, protocol="2020"):
    """crops + amount * N(0, 1), `amount` in int16 units (scaled to [-1, 1) crops under the 2021
    protocol); the noise seeded from `rng` (a random.Random), so it depends only on the group's seed."""
    noise = numpy.random.default_rng(rng.getrandbits(64)).standard_normal(crops.shape, dtype=numpy.float32)
    scale = numpy.float32(amount) if protocol == "2020" else numpy.float32(amount) / INT16_SCALE
    return crops + scale * noise
