"""Kaldi's log mel filterbank (compute-fbank-feats), without torchaudio: the features WeSpeaker's
models are trained and evaluated on, equal to torchaudio.compliance.kaldi.fbank with the same
settings to float32 precision (tests/test_wespeaker.py).

Kaldi's per-frame steps before the FFT (DC removal, pre-emphasis, window, zero padding to a
power of two) are all linear in the frame's samples, so together with the real DFT they are one
(2 x bins, window) matrix, built once in float64. A strided conv1d with it computes every
frame's spectrum in one call, on any device, and exports to ONNX and TorchScript as a plain
convolution (torch.fft has no ONNX form in the exporter the project uses)."""

import math

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F

# The floor under each mel energy before the log: std::numeric_limits<float>::epsilon(), as Kaldi.
FLOAT_EPSILON = float(numpy.finfo(numpy.float32).eps)
WINDOWS = ("hamming", "hanning", "povey", "rectangular")


def mel(freq):
    """Kaldi's mel scale (natural log, 1127), not the HTK log10 form of models/frontend.py."""
    return 1127.0 * numpy.log(1.0 + numpy.asarray(freq, dtype=numpy.float64) / 700.0)


def mel_banks(num_mel_bins, padded_window, sample_frequency, low_freq, high_freq):
    """Kaldi's triangular filters on the mel axis, (num_mel_bins, padded_window // 2 + 1); the
    Nyquist bin has weight 0, as in Kaldi (its filters span the first padded_window // 2 bins)."""
    nyquist = 0.5 * sample_frequency
    high = high_freq if high_freq > 0 else nyquist + high_freq  # Kaldi: <= 0 is an offset from Nyquist
    if not 0.0 <= low_freq < high <= nyquist:
        raise ValueError("kaldi_fbank: need 0 <= low_freq < high_freq <= %g Hz, got %g and %g"
                         % (nyquist, low_freq, high))
    low_mel, high_mel = mel(low_freq), mel(high)
    delta = (high_mel - low_mel) / (num_mel_bins + 1)
    left = low_mel + numpy.arange(num_mel_bins)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    bin_mel = mel(sample_frequency / padded_window * numpy.arange(padded_window // 2))[None, :]
    rising, falling = (bin_mel - left) / (centre - left), (right - bin_mel) / (right - centre)
    weights = numpy.maximum(0.0, numpy.minimum(rising, falling))
    return numpy.pad(weights, ((0, 0), (0, 1)))


def window_function(window_type, size):
    """Kaldi's windows are symmetric: cos(2 pi n / (N - 1))."""
    n = numpy.arange(size, dtype=numpy.float64)
    hann = 0.5 - 0.5 * numpy.cos(2 * math.pi * n / (size - 1))
    if window_type == "hamming":
        return 0.54 - 0.46 * numpy.cos(2 * math.pi * n / (size - 1))
    if window_type == "hanning":
        return hann
    if window_type == "povey":
        return hann ** 0.85
    if window_type == "rectangular":
        return numpy.ones(size)
    raise ValueError("kaldi_fbank: window_type %r: use one of %s" % (window_type, ", ".join(WINDOWS)))


def analysis_matrix(window_size, padded_window, window_type, preemphasis, remove_dc_offset):
    """(2 * (padded_window // 2 + 1), window_size): a frame's raw samples -> the real parts, then
    the imaginary parts, of the DFT of its DC-removed, pre-emphasised, windowed, zero-padded form."""
    steps = numpy.eye(window_size)
    if remove_dc_offset:
        steps = steps - 1.0 / window_size
    # Pre-emphasis y[n] = x[n] - p x[n-1], and Kaldi's y[0] = x[0] - p x[0] (the sample repeated).
    emphasis = numpy.eye(window_size) - preemphasis * numpy.eye(window_size, k=-1)
    emphasis[0, 0] -= preemphasis
    steps = window_function(window_type, window_size)[:, None] * (emphasis @ steps)
    bins = numpy.arange(padded_window // 2 + 1)[:, None]
    # (k * n) mod N keeps the angles exact in float64 for every bin; the zero padding adds nothing.
    angle = 2 * math.pi * ((bins * numpy.arange(window_size)[None, :]) % padded_window) / padded_window
    return numpy.concatenate([numpy.cos(angle) @ steps, -numpy.sin(angle) @ steps])


class KaldiFbank(nn.Module):
    """(batch, samples) int16-range float waveforms -> (batch, num_mel_bins, frames) log mel
    energies, Kaldi's frames (snip_edges: 1 + (samples - window) // shift of them), optionally
    less their mean over time (WeSpeaker's per-utterance CMN). No dither: WeSpeaker extracts
    embeddings without it. Always float32 and without gradient, whatever autocast is active.
    Nothing here is a checkpoint tensor (the buffers are not persistent)."""

    def __init__(self, num_mel_bins=80, frame_length=25.0, frame_shift=10.0, sample_frequency=16000.0,
                 low_freq=20.0, high_freq=0.0, preemphasis_coefficient=0.97, window_type="hamming",
                 remove_dc_offset=True, subtract_mean=False):
        super().__init__()
        # Kaldi (and torchaudio) truncate the milliseconds to whole samples.
        self.window_size = int(sample_frequency * frame_length * 0.001)
        self.window_shift = int(sample_frequency * frame_shift * 0.001)
        if self.window_size < 2 or self.window_shift < 1:
            raise ValueError("kaldi_fbank: frame_length and frame_shift must give at least 2 and 1 samples")
        padded = 1 << (self.window_size - 1).bit_length()  # round_to_power_of_two, Kaldi's default
        self.subtract_mean = subtract_mean
        matrix = analysis_matrix(self.window_size, padded, window_type, preemphasis_coefficient, remove_dc_offset)
        self.register_buffer("analysis", torch.from_numpy(matrix).float().unsqueeze(1), persistent=False)
        banks = mel_banks(num_mel_bins, padded, sample_frequency, low_freq, high_freq)
        self.register_buffer("banks", torch.from_numpy(banks).float(), persistent=False)

    def forward(self, waveform):
        with torch.no_grad(), torch.autocast(waveform.device.type, enabled=False):
            spectrum = F.conv1d(waveform.float().unsqueeze(1), self.analysis, stride=self.window_shift)
            real, imag = spectrum.chunk(2, dim=1)
            power = real * real + imag * imag  # (batch, bins, frames)
            energies = torch.matmul(self.banks, power).clamp(min=FLOAT_EPSILON).log()
            if self.subtract_mean:
                energies = energies - energies.mean(dim=2, keepdim=True)
            return energies


def kaldi_fbank(waveform, num_mel_bins=80, frame_length=25.0, frame_shift=10.0, sample_frequency=16000.0,
                low_freq=20.0, high_freq=0.0, preemphasis_coefficient=0.97, window_type="hamming",
                remove_dc_offset=True, subtract_mean=False):
    """Kaldi fbank features of a waveform in int16 sample range: (samples,) -> (frames, bins), or
    (batch, samples) -> (batch, frames, bins). Equals torchaudio.compliance.kaldi.fbank(waveform
    [None], ...) with dither 0, use_energy False, snip_edges True and the same options; the
    defaults are WeSpeaker's (80 bins, Hamming window), and subtract_mean=True is WeSpeaker's
    per-utterance mean normalisation."""
    waveform = torch.as_tensor(waveform)
    module = KaldiFbank(num_mel_bins, frame_length, frame_shift, sample_frequency, low_freq, high_freq,
                        preemphasis_coefficient, window_type, remove_dc_offset, subtract_mean).to(waveform.device)
    if waveform.shape[-1] < module.window_size:
        raise ValueError("kaldi_fbank: %d samples are shorter than one frame (%d)" % (
            waveform.shape[-1], module.window_size))
    features = module(waveform.reshape(-1, waveform.shape[-1])).transpose(1, 2)
    return features.reshape(waveform.shape[:-1] + features.shape[1:])
