"""Acoustic front ends, numerically equal to the torchaudio transforms the original used.

The submodule and buffer names (`spectrogram.window`, `mel_scale.fb`) are those of
torchaudio's MelSpectrogram, so original checkpoints load without key remapping.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from voxtrainer import SAMPLE_RATE

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
    """|STFT|^power with a periodic window (Hann unless `window_fn` says otherwise), as
    torchaudio.transforms.Spectrogram. The window is a checkpoint buffer: loading a checkpoint
    replaces it, so a model evaluates with the window it was trained with."""

    def __init__(self, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH, power=2.0, center=True,
                 window_fn=torch.hann_window):
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.power, self.center = power, center
        self.register_buffer("window", window_fn(win_length))

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
    f_min=0, f_max=8000, pad=0, n_mels=40, window_fn=...): (batch, samples) -> (batch, n_mels, frames)."""

    def __init__(self, n_mels=40, sample_rate=SAMPLE_RATE, f_min=0.0, f_max=8000.0, window_fn=torch.hann_window):
        super().__init__()
        self.spectrogram = PowerSpectrogram(window_fn=window_fn)
        self.mel_scale = MelScale(n_mels, sample_rate, f_min, f_max, N_FFT // 2 + 1)

    def forward(self, waveform):
        return self.mel_scale(self.spectrogram(waveform))


def normalised_mel(mel, log_input):
    """mel + 1e-6, its log when `log_input` (the 2021 trainer's --log_input; the 2020 models always
    took it), instance-normalised per band over time (InstanceNorm1d without affine), with a channel
    axis: (batch, n_mels, frames) -> (batch, 1, n_mels, frames)."""
    mel = mel + 1e-6
    if log_input:
        mel = mel.log()
    return F.instance_norm(mel).unsqueeze(1)


class LogMelInstanceNorm(MelSpectrogram):
    """The ResNetSE34L / VGGVox input: log(mel + 1e-6), instance-normalised per band,
    with a channel axis: (batch, samples) -> (batch, 1, n_mels, frames).

    Always computed in float32 and without gradient, whatever autocast is active."""

    def __init__(self, n_mels=40, log_input=True, **kwargs):
        super().__init__(n_mels, **kwargs)
        self.log_input = log_input

    def forward(self, waveform):
        # The parent's forward named, not super(): torch.compile cannot trace a zero-argument
        # super() inside these context managers.
        with torch.no_grad(), torch.autocast(waveform.device.type, enabled=False):
            return normalised_mel(MelSpectrogram.forward(self, waveform), self.log_input)


class PreEmphasis(nn.Module):
    """y[t] = x[t] - 0.97 x[t-1], the first sample taking x[1] as its predecessor (reflect padding),
    as the 2021 trainer's utils.PreEmphasis; its filter is the checkpoint buffer `flipped_filter`
    ([-coef, 1]: conv1d correlates, so the taps are stored reversed)."""

    def __init__(self, coef=0.97):
        super().__init__()
        self.register_buffer("flipped_filter", torch.tensor([[[-coef, 1.0]]]))

    def forward(self, waveform):
        padded = F.pad(waveform.unsqueeze(1), (1, 0), "reflect")
        return F.conv1d(padded, self.flipped_filter).squeeze(1)


class PreEmphasisLogMel(nn.Sequential):
    """The ResNetSE34V2 input: pre-emphasis, then a Hamming-window mel spectrogram, then
    normalised_mel. A Sequential, so that the buffers carry the 2021 checkpoint keys
    (`0.flipped_filter`, `1.spectrogram.window`, `1.mel_scale.fb`)."""

    def __init__(self, n_mels=40, log_input=True):
        super().__init__(PreEmphasis(), MelSpectrogram(n_mels, window_fn=torch.hamming_window))
        self.log_input = log_input

    def forward(self, waveform):
        with torch.no_grad(), torch.autocast(waveform.device.type, enabled=False):
            return normalised_mel(nn.Sequential.forward(self, waveform.float()), self.log_input)  # see above


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
