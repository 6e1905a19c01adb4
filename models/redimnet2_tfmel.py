"""WeSpeaker's "tfmel" front end (wespeaker/frontend/tfmel.py, TFMelFrontend with ReDimNet2's
settings), without torchaudio: the log mel energies ReDimNet2 is trained and evaluated on.

Unlike the Kaldi fbank, WeSpeaker keeps this front end's tensors in the model's state_dict (its
training script attaches the front end as the submodule `frontend`), so its published checkpoint
carries them: the pre-emphasis filter, the windowed DFT kernels and the mel filterbank. The
buffers here have those names and shapes and WeSpeaker's values to the bit (tests/test_redimnet2.py),
so loading the checkpoint changes nothing. Its steps differ from Kaldi's: the whole signal is
normalised to zero mean and unit variance, pre-emphasised with a reflected first sample, framed
centred (half a hop of zeros on either side), and the DFT keeps bins 0..n_fft/2 - 1 (no Nyquist
bin); the mel scale is HTK's (log10), the filters spread over those bins as WeSpeaker spreads them.
The DFT is a strided conv1d, so the front end exports to ONNX and TorchScript as a plain conv."""

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F

PREEMPHASIS = 0.97


def hz_to_mel(hz):
    return 2595 * numpy.log10(1 + hz / 700.0)


def mel_filterbank(n_mels, bins, sample_rate, low_freq, high_freq):
    """(bins, n_mels) float32 triangles. WeSpeaker places bins 1..bins-1 evenly on 0..Nyquist in
    `bins` points (not the DFT's own frequencies) and gives bin 0 no weight; kept so, as the
    published weights were trained on it."""
    edges = numpy.linspace(hz_to_mel(low_freq), hz_to_mel(high_freq), n_mels + 2)
    left, centre, right = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    bin_mel = hz_to_mel(numpy.linspace(0, sample_rate // 2, bins))[1:, None]
    rising, falling = (bin_mel - left) / (centre - left), (right - bin_mel) / (right - centre)
    weights = numpy.maximum(0.0, numpy.minimum(rising, falling))
    return numpy.vstack([numpy.zeros((1, n_mels)), weights]).astype(numpy.float32)


def dft_kernels(frame_length, n_fft):
    """The Hamming-windowed cosine and sine kernels, each (n_fft // 2, 1, frame_length) float32,
    rounded as WeSpeaker rounds them (float64 angles, float32 product with the window)."""
    # scipy.signal.windows.hamming's (symmetric) form, WeSpeaker's window; equal to it in float32
    # and written out because importing scipy.signal takes seconds.
    window = (0.54 + 0.46 * numpy.cos(numpy.linspace(-numpy.pi, numpy.pi, frame_length))).astype(numpy.float32)
    samples, bins = numpy.arange(frame_length), numpy.arange(n_fft // 2)
    angle = 2 * numpy.pi * samples[None, :] * bins[:, None] / n_fft  # WeSpeaker's evaluation order
    return [(function(angle).astype(numpy.float32) * window[None, :])[:, None, :]
            for function in (numpy.cos, numpy.sin)]


class SignalNorm(nn.Module):
    """Zero mean, unit (biased) standard deviation over the whole signal, + eps under the division."""

    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return (x - x.mean(dim=2, keepdim=True)) / (x.std(dim=2, keepdim=True, unbiased=False) + self.eps)


class PreEmphasis(nn.Module):
    def __init__(self, coefficient=PREEMPHASIS):
        super().__init__()
        self.register_buffer("flipped_filter", torch.tensor([[[-coefficient, 1.0]]]))

    def forward(self, x):
        # The first sample's predecessor is the second one (reflection), as WeSpeaker.
        return F.conv1d(F.pad(x, (1, 0), mode="reflect"), self.flipped_filter)


class MelSpectrum(nn.Module):
    """(batch, 1, samples) -> (batch, n_mels, frames) mel energies, each step clipped to [eps, 1/eps]."""

    def __init__(self, frame_length, hop_length, n_fft, sample_rate, low_freq, high_freq, n_mels, eps):
        super().__init__()
        self.hop_length, self.eps = hop_length, eps
        real, imaginary = dft_kernels(frame_length, n_fft)
        self.register_buffer("real_kernel_pt", torch.from_numpy(real))
        self.register_buffer("image_kernel_pt", torch.from_numpy(imaginary))
        banks = mel_filterbank(n_mels, n_fft // 2, sample_rate, low_freq, high_freq)
        self.register_buffer("melbanks_pt", torch.from_numpy(banks.T[:, :, None].copy()))

    def forward(self, x):
        padding = self.hop_length // 2
        real = F.conv1d(x, self.real_kernel_pt, stride=self.hop_length, padding=padding)
        imaginary = F.conv1d(x, self.image_kernel_pt, stride=self.hop_length, padding=padding)
        power = (real * real + imaginary * imaginary).clip(self.eps, 1 / self.eps)
        return F.conv1d(power, self.melbanks_pt).clip(self.eps, 1 / self.eps)


class TFMelBanks(nn.Module):
    """Log mel energies less their mean over time; float32 and without gradient whatever autocast
    is active. WeSpeaker's SpecAugment of this front end is off in ReDimNet2's recipe and not here."""

    def __init__(self, sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels, eps):
        super().__init__()
        self.eps = eps
        # Index 1 and 2 are the checkpoint's names (torchfbank.1.flipped_filter, torchfbank.2.*).
        self.torchfbank = nn.Sequential(SignalNorm(eps), PreEmphasis(), MelSpectrum(
            win_length, hop_length, n_fft, sample_rate, f_min, f_max, n_mels, eps))

    def forward(self, waveform):
        with torch.no_grad(), torch.autocast(waveform.device.type, enabled=False):
            energies = self.torchfbank(waveform.float().unsqueeze(1)) + self.eps
            log_energies = energies.log()
            return log_energies - log_energies.mean(dim=-1, keepdim=True)


class TFMelFrontend(nn.Module):
    """(batch, samples) waveforms in [-1, 1] -> (batch, n_mels, frames), frames =
    1 + (samples + 2 * (hop // 2) - win_length) // hop. The defaults are WeSpeaker's redimnet2.yaml
    (`tfmel_args`)."""

    def __init__(self, n_mels=72, sample_rate=16000, n_fft=512, win_length=400, hop_length=160, f_min=20,
                 f_max=7600, eps=1e-8):
        super().__init__()
        self.spec = TFMelBanks(sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels, eps)

    def forward(self, waveform):
        return self.spec(waveform)
