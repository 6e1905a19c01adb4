"""Acoustic front ends, numerically equal to the torchaudio transforms the original used.

The submodule and buffer names (`spectrogram.window`, `mel_scale.fb`) are those of
torchaudio's MelSpectrogram, so original checkpoints load without key remapping.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160


def hz_to_mel(freq):
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def mel_to_hz(mels):
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def htk_mel_filterbank(n_freqs, f_min, f_max, n_mels, sample_rate):
    """Triangular HTK-scale filters without area normalisation, shape (n_freqs, n_mels)."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_pts = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down_slopes = -slopes[:, :-2] / f_diff[:-1]
    up_slopes = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down_slopes, up_slopes), min=0.0)


class PowerSpectrogram(nn.Module):
    """|STFT|^power with a periodic Hann window, as torchaudio.transforms.Spectrogram."""

    def __init__(self, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH, power=2.0, center=True):
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.power, self.center = power, center
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, waveform):
        spec = torch.stft(waveform.float(), self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window, center=self.center, pad_mode="reflect",
                          normalized=False, onesided=True, return_complex=True)
        return spec.abs().pow(self.power)


class MelScale(nn.Module):
    def __init__(self, n_mels, sample_rate, f_min, f_max, n_stft):
        super().__init__()
        self.register_buffer("fb", htk_mel_filterbank(n_stft, f_min, f_max, n_mels, sample_rate))

    def forward(self, spec):
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """torchaudio.transforms.MelSpectrogram(16000, n_fft=512, win_length=400, hop_length=160,
    f_min=0, f_max=8000, pad=0, n_mels=40): (batch, samples) -> (batch, n_mels, frames)."""

    def __init__(self, n_mels=40, sample_rate=SAMPLE_RATE, f_min=0.0, f_max=8000.0):
        super().__init__()
        self.spectrogram = PowerSpectrogram()
        self.mel_scale = MelScale(n_mels, sample_rate, f_min, f_max, N_FFT // 2 + 1)

    def forward(self, waveform):
        return self.mel_scale(self.spectrogram(waveform))


class LogMelInstanceNorm(MelSpectrogram):
    """The ResNetSE34L / VGGVox input: log(mel + 1e-6), instance-normalised per band,
    with a channel axis: (batch, samples) -> (batch, 1, n_mels, frames).

    Always computed in float32 and without gradient, whatever autocast is active."""

    def forward(self, waveform):
        with torch.no_grad(), torch.autocast(waveform.device.type, enabled=False):
            mel = super().forward(waveform) + 1e-6
            return F.instance_norm(mel.log()).unsqueeze(1)


class LinearSpectrogramInstanceNorm(nn.Module):
    """The ResNetSE34 input: |STFT| (center=False, 257 bins), instance-normalised, no log:
    (batch, samples) -> (batch, 1, 257, frames). The window is not a checkpoint buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN_LENGTH), persistent=False)

    def forward(self, waveform):
        with torch.no_grad(), torch.autocast(waveform.device.type, enabled=False):
            spec = torch.stft(waveform.float(), N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH,
                              window=self.window, center=False, normalized=False, onesided=True,
                              return_complex=True)
            return F.instance_norm(spec.abs()).unsqueeze(1)
