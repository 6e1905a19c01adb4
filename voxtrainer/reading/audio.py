"""Reading audio and cutting crops, exactly as the original trainers did, by one of two protocols
(`protocol`, passed down from SpeakerNet.protocol; --protocol):

* "2020": int16 sample values as float (not scaled), short files zero-padded on both sides;
* "2021": samples scaled to [-1, 1) (int16 / 32768, what soundfile.read gives by default), and a
  file of at most one crop extended at its end by repeating it from its start (numpy 'wrap')
  to one sample more than a crop.

Both cut `max_frames * 160 + 240` samples a crop, evaluation crops at evenly spaced starts.
Training crops of the 2020 protocol may instead repeat short files (`padding="repeat"`,
--short_crop_padding), as WeSpeaker does.

Every read of audio samples goes through `read_samples`, the one home of "samples in int16 range":
integer formats (16- and 24-bit PCM, FLAC, ...) through libsndfile's int16 conversion, as the
original read them; 32- and 64-bit float files, which that conversion would round to integers
without scaling (silence), scaled by 32768, so that a float copy of a 16-bit file gives back
exactly its int16 values. The one shortcut: training crops of plain 16-bit PCM WAV files, VoxCeleb's
format, are read by `load_random_crop` without libsndfile (`pcm16_wav_data`, `read_pcm16`), the
same int16 values at a third of the cost."""

import contextlib
import functools
import math
import os
import random
import struct
from typing import NamedTuple

import numpy
import soundfile
import torch

from voxtrainer import SAMPLE_RATE
from voxtrainer.errors import InputError

FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})  # soundfile's names of IEEE float sample formats
INT16_SCALE = numpy.float32(32768)  # a power of two: float <-> int16 range is exact both ways
PROTOCOLS = ("2020", "2021")
# How a training crop is filled out when its file is shorter: "zero" is the 2020 protocol's symmetric
# zero padding; "repeat" tiles the file from its start, as WeSpeaker's get_random_chunk does, and is
# what the 2021 protocol's wrap padding already gives.
PADDINGS = ("zero", "repeat")
PROTOCOL_PADDING = {"2020": "zero", "2021": "repeat"}


def crop_samples(max_frames):
    return max_frames * 160 + 240


def unreadable(filename, error, hint=""):
    """The InputError for a file soundfile cannot open or read."""
    return InputError("%s: cannot read audio (%s)%s" % (filename, str(error).strip() or type(error).__name__, hint))


class Remedies(NamedTuple):
    """What to tell the user to do about a file open_audio refuses, by problem."""
    unreadable: str = ""
    sample_rate: str = "resample it, e.g. with dataprep.py --convert or ffmpeg -ar 16000"
    channels: str = "convert with ffmpeg -ac 1"
    empty: str = ""


@contextlib.contextmanager
def open_audio(filename, remedies=Remedies()):
    """An open soundfile.SoundFile of a 16 kHz mono file holding samples; InputError naming the file
    (and the remedy for its problem) otherwise. One open serves the header check and the read."""
    try:
        handle = soundfile.SoundFile(filename)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise unreadable(filename, error, remedies.unreadable and "; " + remedies.unreadable)
    with handle:
        if handle.samplerate != SAMPLE_RATE:
            raise InputError("%s: sample rate is %d Hz, expected %d Hz (%s)" % (
                filename, handle.samplerate, SAMPLE_RATE, remedies.sample_rate))
        if handle.channels != 1:
            raise InputError("%s: has %d channels, expected mono (%s)" % (filename, handle.channels,
                                                                          remedies.channels))
        if handle.frames == 0:
            raise InputError("%s: contains no audio samples%s" % (filename, remedies.empty and "; " + remedies.empty))
        yield handle


def audio_info(filename):
    """Frame count of a 16 kHz mono file; InputError naming the file otherwise."""
    with open_audio(filename) as handle:
        return handle.frames


def audio_frames(filename):
    """audio_info, reading a plain 16-bit PCM WAV header directly (pcm16_wav_data): the duration
    filter reads the header of every file of a train list, a million for VoxCeleb2."""
    try:
        with open(filename, "rb") as raw:
            layout = pcm16_wav_data(raw)
    except OSError:
        layout = None  # audio_info names the problem
    return layout[1] if layout is not None else audio_info(filename)


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


def check_protocol(protocol):
    if protocol not in PROTOCOLS:
        raise InputError("unknown audio protocol %r: valid protocols are %s" % (protocol, ", ".join(PROTOCOLS)))
    return protocol


def check_padding(padding, protocol):
    """The short-crop padding to use: the protocol's own when `padding` is None; InputError for an
    unknown one, or zero padding under the 2021 protocol, whose crops always repeat short files."""
    own = PROTOCOL_PADDING[check_protocol(protocol)]
    if padding is None:
        return own
    if padding not in PADDINGS:
        raise InputError("unknown short-crop padding %r: valid are %s" % (padding, ", ".join(PADDINGS)))
    if padding != own and protocol == "2021":
        raise InputError("--short_crop_padding %s: the 2021 protocol repeats short files (its wrap padding); "
                         "zero padding is the 2020 protocol's" % padding)
    return padding


def repeat_to_length(audio, length):
    """WeSpeaker's repeat padding (get_random_chunk): the file tiled from its start, cut to `length`."""
    audio = numpy.asarray(audio, dtype=numpy.float32)
    return numpy.tile(audio, length // audio.shape[0] + 1)[:length]


def wrap_padding(num_samples, max_audio):
    """Samples the 2021 protocol appends to a file no longer than one crop (0 for longer files)."""
    return max_audio - num_samples + 1 if num_samples <= max_audio else 0


def pad_for_protocol(audio, max_audio, protocol):
    """A whole file (1-D float32, int16 range) as the protocol's crops are cut from it: scaled and
    wrap-padded (2021), or zero-padded on both sides (2020)."""
    if check_protocol(protocol) == "2021":
        audio = audio / INT16_SCALE  # exact: a power of two
        extra = wrap_padding(audio.shape[0], max_audio)
        return numpy.pad(audio, (0, extra), "wrap") if extra else audio
    shortage = symmetric_padding(audio.shape[0], max_audio)
    if shortage:
        audio = numpy.pad(audio, (shortage, shortage), "constant", constant_values=0)
    return audio


def loadWAV(filename, max_frames, evalmode=True, num_eval=10, protocol="2020"):
    """The original's crops: `num_eval` evenly spaced crops in eval mode (one whole-file crop
    when max_frames is 0), else one random crop (Python's `random`). Returns (crops, samples)."""
    return crop_waveform(read_audio(filename), max_frames, evalmode, num_eval, protocol)


def crop_waveform(audio, max_frames, evalmode=True, num_eval=10, protocol="2020"):
    """loadWAV's crops of a waveform already in memory (1-D float32, int16 range)."""
    max_audio = crop_samples(max_frames)
    audio = pad_for_protocol(audio, max_audio, protocol)
    audiosize = audio.shape[0]

    if evalmode and max_frames == 0:
        return torch.from_numpy(audio[numpy.newaxis, :].copy())
    if evalmode:
        starts = numpy.linspace(0, audiosize - max_audio, num=num_eval)
    else:
        starts = numpy.array([numpy.int64(random.random() * (audiosize - max_audio))])
    crops = [audio[int(start):int(start) + max_audio] for start in starts]
    return torch.from_numpy(numpy.stack(crops, axis=0))


def load_random_crop(filename, max_frames, rng, protocol="2020", padding=None):
    """One training crop, as loadWAV(evalmode=False) with `rng` in place of the global `random`,
    reading only the samples it needs from disk (one open: header check, seek, read). A plain 16 kHz
    mono 16-bit PCM WAV file (VoxCeleb's format; pcm16_wav_data) is read directly, its int16 values
    being exactly what libsndfile returns, at a third of libsndfile's per-file cost; every other file
    goes through open_audio and read_samples. `padding` (check_padding; default: the protocol's own)
    fills out files shorter than a crop."""
    return load_random_samples(filename, crop_samples(max_frames), rng, protocol, padding)


def load_random_samples(filename, max_audio, rng, protocol="2020", padding=None):
    """load_random_crop of `max_audio` samples, any number (speed perturbation reads a longer or
    shorter stretch than one crop before resampling it to one)."""
    repeat = check_padding(padding, protocol) == "repeat"
    cut = random_crop_2021 if protocol == "2021" else functools.partial(random_crop, repeat=repeat)
    try:
        raw = open(filename, "rb")
    except OSError:
        raw = None  # open_audio below names the problem
    if raw is not None:
        with raw:
            layout = pcm16_wav_data(raw)
            if layout is not None:
                offset, num_samples = layout
                return cut(num_samples, max_audio, rng, lambda first, count: read_pcm16(raw, offset, first, count))
    with open_audio(filename) as handle:
        def read(first, count):
            if first:
                handle.seek(first)
            return read_samples(handle, count)
        return cut(handle.frames, max_audio, rng, read)


def random_crop(num_samples, max_audio, rng, read, repeat=False):
    """loadWAV(evalmode=False)'s crop of a file of `num_samples` samples, its start drawn from `rng`;
    `read(first, count)` gives the file's samples [first, first + count). With `repeat`, a file
    shorter than the crop is tiled (repeat_to_length) instead of zero-padded."""
    if repeat and num_samples < max_audio:
        rng.random()  # drawn all the same, so that the group's other crops are those of zero padding
        return repeat_to_length(read(0, num_samples), max_audio)
    shortage = symmetric_padding(num_samples, max_audio)
    padded_size = num_samples + 2 * shortage
    start = int(numpy.int64(rng.random() * (padded_size - max_audio))) - shortage
    first, last = max(start, 0), min(start + max_audio, num_samples)
    crop = numpy.zeros(max_audio, dtype=numpy.float32)
    crop[first - start:last - start] = read(first, last - first)
    return crop


def random_crop_2021(num_samples, max_audio, rng, read):
    """random_crop by the 2021 protocol: scaled samples, a short file wrap-padded to max_audio + 1
    samples (so its crop always starts at 0, the draw being still consumed), else a start drawn
    over num_samples - max_audio."""
    extra = wrap_padding(num_samples, max_audio)
    if extra:
        audio = pad_for_protocol(numpy.asarray(read(0, num_samples), dtype=numpy.float32), max_audio, "2021")
        start = int(numpy.int64(rng.random() * (audio.shape[0] - max_audio)))
        return audio[start:start + max_audio]
    start = int(numpy.int64(rng.random() * (num_samples - max_audio)))
    return numpy.asarray(read(start, max_audio), dtype=numpy.float32) / INT16_SCALE


WAV_PCM16_MONO = (1, 1, SAMPLE_RATE, 2, 16)  # fmt chunk: format tag (PCM), channels, rate, block align, bits
MAX_WAV_CHUNKS = 64


def pcm16_wav_data(raw):
    """(byte offset, frames) of the samples of an open binary file that is a plain RIFF/WAVE file of
    16 kHz mono 16-bit PCM (format tag 1, fmt chunk before the data chunk) whose data chunk lies whole
    within the file and within the RIFF chunk; its samples are then little-endian int16 values.
    None for any other file (other rates, channels or formats, WAVE_FORMAT_EXTENSIBLE, float, RF64,
    a streamed, truncated or odd-sized data chunk, ...), which libsndfile then reads and judges."""
    try:
        file_size = os.fstat(raw.fileno()).st_size
        head = raw.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        riff_end = 8 + struct.unpack("<I", head[4:8])[0]
        position, has_format = 12, False
        for _ in range(MAX_WAV_CHUNKS):
            header = raw.read(8)
            if len(header) < 8:
                return None
            ident, size = header[:4], struct.unpack("<I", header[4:])[0]
            position += 8
            if ident == b"data":
                end = position + size
                if not has_format or size == 0 or size % 2 or end > file_size or end > riff_end:
                    return None
                return position, size // 2
            if ident == b"fmt ":
                fields = raw.read(16)
                if has_format or size < 16 or len(fields) < 16:
                    return None
                tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", fields)
                if (tag, channels, rate, align, bits) != WAV_PCM16_MONO:
                    return None
                has_format = True
            position += size + size % 2  # chunks are padded to an even size
            raw.seek(position)
        return None
    except OSError:
        return None


def read_pcm16(raw, offset, first, count):
    """Samples [first, first + count) of a file laid out as pcm16_wav_data found, as int16."""
    try:
        raw.seek(offset + 2 * first)
        data = raw.read(2 * count)
    except OSError as error:
        raise unreadable(raw.name, error)
    if len(data) < 2 * count:
        raise InputError("%s: holds fewer samples than its header says (truncated file?)" % raw.name)
    return numpy.frombuffer(data, dtype="<i2")
