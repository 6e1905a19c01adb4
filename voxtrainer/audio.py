"""Reading audio and cutting crops, exactly as the 2020 trainer did: int16 sample values as float
(not scaled), `max_frames * 160 + 240` samples a crop, symmetric zero padding of short files.

Every read of audio samples goes through `read_samples`, the one home of "samples in int16 range":
integer formats (16- and 24-bit PCM, FLAC, ...) through libsndfile's int16 conversion, as the
original read them; 32- and 64-bit float files, which that conversion would round to integers
without scaling (silence), scaled by 32768, so that a float copy of a 16-bit file gives back
exactly its int16 values."""

import contextlib
import math
import random

import numpy
import soundfile
import torch

from voxtrainer.errors import InputError

SAMPLE_RATE = 16000
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})  # soundfile's names of IEEE float sample formats
INT16_SCALE = numpy.float32(32768)  # a power of two: float <-> int16 range is exact both ways


def crop_samples(max_frames):
    return max_frames * 160 + 240


def unreadable(filename, error, hint=""):
    """The InputError for a file soundfile cannot open or read."""
    return InputError("%s: cannot read audio (%s)%s" % (filename, str(error).strip() or type(error).__name__, hint))


@contextlib.contextmanager
def open_audio(filename):
    """An open soundfile.SoundFile of a 16 kHz mono file holding samples; InputError naming the file
    otherwise. One open serves the header check and the read."""
    try:
        handle = soundfile.SoundFile(filename)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise unreadable(filename, error)
    with handle:
        if handle.samplerate != SAMPLE_RATE:
            raise InputError("%s: sample rate is %d Hz, expected %d Hz (resample it, e.g. with dataprep.py "
                             "--convert or ffmpeg -ar 16000)" % (filename, handle.samplerate, SAMPLE_RATE))
        if handle.channels != 1:
            raise InputError("%s: has %d channels, expected mono (convert with ffmpeg -ac 1)" % (
                filename, handle.channels))
        if handle.frames == 0:
            raise InputError("%s: contains no audio samples" % filename)
        yield handle


def audio_info(filename):
    """Frame count of a 16 kHz mono file; InputError naming the file otherwise."""
    with open_audio(filename) as handle:
        return handle.frames


def read_samples(handle, frames=-1, hint=""):
    """Up to `frames` samples (default: to the end) from the position of an open soundfile.SoundFile,
    as float32 values in int16 range; InputError naming the file if they cannot be read."""
    try:
        if handle.subtype in FLOAT_SUBTYPES:
            audio = handle.read(frames, dtype="float32") * INT16_SCALE
        else:
            audio = handle.read(frames, dtype="int16").astype(numpy.float32)
    except Exception as error:
        raise unreadable(handle.name, error, hint)
    if frames >= 0 and audio.shape[0] < frames:
        raise InputError("%s: holds fewer samples than its header says (truncated file?)%s" % (handle.name, hint))
    if handle.subtype in FLOAT_SUBTYPES and not numpy.isfinite(audio).all():
        raise InputError("%s: contains non-finite samples (NaN or infinity)%s" % (handle.name, hint))
    return audio


def read_audio(filename, start=0, stop=None):
    """Samples [start, stop) of a validated file, as float32 values in int16 range (read_samples)."""
    with open_audio(filename) as handle:
        start, stop, _ = slice(start, stop).indices(handle.frames)
        if start:
            handle.seek(start)
        return read_samples(handle, max(stop - start, 0))


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
    reading only the samples it needs from disk (one open: header check, seek, read)."""
    max_audio = crop_samples(max_frames)
    with open_audio(filename) as handle:
        num_samples = handle.frames
        shortage = symmetric_padding(num_samples, max_audio)
        padded_size = num_samples + 2 * shortage
        start = int(numpy.int64(rng.random() * (padded_size - max_audio))) - shortage
        first, last = max(start, 0), min(start + max_audio, num_samples)
        crop = numpy.zeros(max_audio, dtype=numpy.float32)
        if first:
            handle.seek(first)
        crop[first - start:last - start] = read_samples(handle, last - first)
    return crop
