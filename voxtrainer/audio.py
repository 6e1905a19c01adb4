"""Reading audio and cutting crops, exactly as the 2020 trainer did: int16 sample values as float
(not scaled), `max_frames * 160 + 240` samples a crop, symmetric zero padding of short files."""

import math
import random

import numpy
import soundfile
import torch

from voxtrainer.errors import InputError

SAMPLE_RATE = 16000


def crop_samples(max_frames):
    return max_frames * 160 + 240


def audio_info(filename):
    """Frame count of a 16 kHz mono file; InputError naming the file otherwise."""
    try:
        info = soundfile.info(filename)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise InputError("%s: cannot read audio (%s)" % (filename, str(error).strip() or type(error).__name__))
    if info.samplerate != SAMPLE_RATE:
        raise InputError("%s: sample rate is %d Hz, expected %d Hz (resample it, e.g. with "
                         "dataprep.py --convert or ffmpeg -ar 16000)" % (filename, info.samplerate, SAMPLE_RATE))
    if info.channels != 1:
        raise InputError("%s: has %d channels, expected mono (convert with ffmpeg -ac 1)" % (filename, info.channels))
    if info.frames == 0:
        raise InputError("%s: contains no audio samples" % filename)
    return info.frames


def read_audio(filename, start=0, stop=None):
    """int16 samples [start, stop) of a validated file, as float32 values in int16 range."""
    audio_info(filename)
    try:
        audio, _ = soundfile.read(filename, start=start, stop=stop, dtype="int16", always_2d=False)
    except Exception as error:
        raise InputError("%s: cannot read audio (%s)" % (filename, str(error).strip() or type(error).__name__))
    return audio.astype(numpy.float32)


def symmetric_padding(num_samples, max_audio):
    """Zeros added on each side of a file no longer than one crop, as the original."""
    return math.floor((max_audio - num_samples + 1) / 2) if num_samples <= max_audio else 0


def loadWAV(filename, max_frames, evalmode=True, num_eval=10):
    """The original's crops: `num_eval` evenly spaced crops in eval mode (one whole-file crop
    when max_frames is 0), else one random crop (Python's `random`). Returns (crops, samples)."""
    return crop_waveform(read_audio(filename), max_frames, evalmode, num_eval)


def crop_waveform(audio, max_frames, evalmode=True, num_eval=10):
    """loadWAV's crops of a waveform already in memory (1-D float32, int16 range)."""
    max_audio = crop_samples(max_frames)
    shortage = symmetric_padding(audio.shape[0], max_audio)
    if shortage:
        audio = numpy.pad(audio, (shortage, shortage), "constant", constant_values=0)
    audiosize = audio.shape[0]

    if evalmode and max_frames == 0:
        return torch.from_numpy(audio[numpy.newaxis, :].copy())
    if evalmode:
        starts = numpy.linspace(0, audiosize - max_audio, num=num_eval)
    else:
        starts = numpy.array([numpy.int64(random.random() * (audiosize - max_audio))])
    crops = [audio[int(start):int(start) + max_audio] for start in starts]
    return torch.from_numpy(numpy.stack(crops, axis=0))


def load_random_crop(filename, max_frames, rng):
    """One training crop, as loadWAV(evalmode=False) with `rng` in place of the global `random`,
    reading only the samples it needs from disk."""
    max_audio = crop_samples(max_frames)
    num_samples = audio_info(filename)
    shortage = symmetric_padding(num_samples, max_audio)
    padded_size = num_samples + 2 * shortage
    start = int(numpy.int64(rng.random() * (padded_size - max_audio))) - shortage
    first, last = max(start, 0), min(start + max_audio, num_samples)
    crop = numpy.zeros(max_audio, dtype=numpy.float32)
    crop[first - start:last - start] = read_audio(filename, first, last)
    return crop
