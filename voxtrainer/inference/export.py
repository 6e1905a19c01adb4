"""Stand-alone embedding networks: ONNX and TorchScript files of a trained `__S__` that run without
this repository.

Input `waveform`: float32 (batch, samples), 16 kHz, int16 sample range (as the trainer reads wav
files: the integer sample values, not scaled to [-1, 1]); any length of at least 0.04 s.
Output `embedding`: float32 (batch, nOut), L2-normalised when the training loss scores normalised
embeddings, i.e. exactly SpeakerNet.embed_crops. Average the embeddings of several crops, or feed
the whole file as one crop (as --eval_frames 0)."""

import copy
import math
import warnings
from typing import NamedTuple

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.frontend import LinearSpectrogramInstanceNorm, LogMelInstanceNorm, PreEmphasisLogMel, normalised_mel
from voxtrainer import log
from voxtrainer.atomic import atomic_output, check_writable, make_parent_folder
from voxtrainer.errors import InputError

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
# Trace on 1.015 s of audio: any length works afterwards (the axes are dynamic).
EXAMPLE_SAMPLES = 16000 + 240
CHECK_TOLERANCE = 1e-4


class DFTSpectrogram(nn.Module):
    """|STFT|^power as a strided conv1d with a windowed DFT basis. torch.stft's complex output has
    no ONNX form; the basis gives the same numbers from a plain convolution, which every runtime has."""

    def __init__(self, window, n_fft, hop_length, center, power):
        super().__init__()
        if power not in (1, 2):
            raise ValueError("DFTSpectrogram: power must be 1 (magnitude) or 2 (power), not %r" % power)
        self.n_fft, self.hop_length, self.center, self.power = n_fft, hop_length, center, power
        # torch.stft centres a window shorter than n_fft in the frame.
        left = (n_fft - window.shape[0]) // 2
        padded = numpy.zeros(n_fft)
        padded[left:left + window.shape[0]] = window.double().cpu().numpy()
        bins, samples = numpy.arange(n_fft // 2 + 1), numpy.arange(n_fft)
        # (k * n) mod n_fft keeps the angles exact in float64 for every bin.
        angle = 2 * math.pi * ((bins[:, None] * samples[None, :]) % n_fft) / n_fft
        # Separate real and imaginary kernels keep the channel count static for ONNX shape inference.
        self.register_buffer("cos", torch.from_numpy(numpy.cos(angle) * padded).float().unsqueeze(1))
        self.register_buffer("sin", torch.from_numpy(-numpy.sin(angle) * padded).float().unsqueeze(1))

    def forward(self, waveform):
        frames = waveform.unsqueeze(1)
        if self.center:
            frames = F.pad(frames, (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = F.conv1d(frames, self.cos, stride=self.hop_length)
        imag = F.conv1d(frames, self.sin, stride=self.hop_length)
        power = real * real + imag * imag
        return power if self.power == 2 else power.sqrt()


class ExportLogMel(nn.Module):
    """LogMelInstanceNorm (ResNetSE34L, VGGVox) or PreEmphasisLogMel (ResNetSE34V2, whose
    pre-emphasis is a plain conv1d and is kept) on a DFTSpectrogram."""

    def __init__(self, frontend):
        super().__init__()
        self.pre_emphasis = copy.deepcopy(frontend[0]) if isinstance(frontend, PreEmphasisLogMel) else None
        mel = frontend[1] if isinstance(frontend, PreEmphasisLogMel) else frontend
        stft = mel.spectrogram
        self.spectrogram = DFTSpectrogram(stft.window, stft.n_fft, stft.hop_length, stft.center, stft.power)
        self.register_buffer("fb", mel.mel_scale.fb.detach().clone())
        self.log_input = frontend.log_input

    def forward(self, waveform):
        if self.pre_emphasis is not None:
            waveform = self.pre_emphasis(waveform)
        mel = torch.matmul(self.spectrogram(waveform).transpose(1, 2), self.fb).transpose(1, 2)
        return normalised_mel(mel, self.log_input)


class ExportLinearSpectrogram(nn.Module):
    """LinearSpectrogramInstanceNorm (ResNetSE34) on a DFTSpectrogram."""

    def __init__(self, frontend, n_fft=512, hop_length=160):
        super().__init__()
        self.spectrogram = DFTSpectrogram(frontend.window, n_fft, hop_length, center=False, power=1)

    def forward(self, waveform):
        return F.instance_norm(self.spectrogram(waveform)).unsqueeze(1)


EXPORT_FRONTENDS = ((LogMelInstanceNorm, ExportLogMel), (PreEmphasisLogMel, ExportLogMel),
                    (LinearSpectrogramInstanceNorm, ExportLinearSpectrogram))


class EmbeddingNetwork(nn.Module):
    """A copy of net.__S__ with export-friendly front ends, ending like SpeakerNet.embed_crops."""

    def __init__(self, net):
        super().__init__()
        self.model = copy.deepcopy(net.__S__).cpu().float().eval()
        for parent in list(self.model.modules()):
            for name, child in parent.named_children():
                for original, replacement in EXPORT_FRONTENDS:
                    if isinstance(child, original):
                        setattr(parent, name, replacement(child))
        self.normalize = net.test_normalize
        self.eval()

    def forward(self, waveform):
        embedding = self.model(waveform)
        return F.normalize(embedding, p=2, dim=1) if self.normalize else embedding


def example_waveform(batch=2, samples=EXAMPLE_SAMPLES, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, samples, generator=generator) * 3000


def export_onnx(network, path):
    with warnings.catch_warnings():
        # The TorchScript-based exporter (the one that needs no onnxscript) warns about its own
        # deprecation and about eval-mode instance norm; export() checks the result numerically instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (example_waveform(),), path, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["waveform"], output_names=["embedding"],
                          dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "embedding": {0: "batch"}})


def export_torchscript(network, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, (example_waveform(),), check_trace=False)
        torch.jit.save(traced, path)


def run_exported(fmt, path, waveform):
    """Embeddings from an exported file, loaded as a user without this repository would."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise InputError("--export onnx checks the file it writes with onnxruntime: pip install onnxruntime")
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(["embedding"], {"waveform": numpy.asarray(waveform, dtype=numpy.float32)})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(path, map_location="cpu")
    with torch.no_grad():
        return module(torch.as_tensor(waveform, dtype=torch.float32)).numpy()


def relative_difference(ours, reference):
    """Largest |ours - reference| per embedding, relative to that embedding's largest component."""
    ours, reference = numpy.asarray(ours, dtype=numpy.float64), numpy.asarray(reference, dtype=numpy.float64)
    scale = numpy.maximum(numpy.abs(reference).max(axis=-1, keepdims=True), 1e-30)
    return float((numpy.abs(ours - reference) / scale).max())


class Exported(NamedTuple):
    difference: float    # largest relative difference to PyTorch's embedding, on a fresh length
    embedding_size: int


def export(net, fmt, path):
    """Write net's embedding network as `fmt` to `path` and check it reproduces PyTorch's embeddings
    on a different length than it was traced on."""
    if fmt not in FORMATS:
        raise InputError("--export %s: use one of %s" % (fmt, ", ".join(FORMATS)))
    net.eval()
    network = EmbeddingNetwork(net)
    make_parent_folder(path)
    with atomic_output(path) as temporary:
        (export_onnx if fmt == "onnx" else export_torchscript)(network, temporary)
        check = example_waveform(batch=1, samples=EXAMPLE_SAMPLES + 4321, seed=1)
        with torch.no_grad():
            reference = net.embed_crops(check).cpu().numpy()
        difference = relative_difference(run_exported(fmt, temporary, check.numpy()), reference)
        if not difference <= CHECK_TOLERANCE:
            raise InputError("%s export of %s differs from PyTorch by %.2g (relative), more than %g: not written"
                             % (fmt, type(net.__S__).__name__, difference, CHECK_TOLERANCE))
    return Exported(difference, reference.shape[1])


def export_checkpoint(net, checkpoint, fmt, out):
    """--export: load `checkpoint` into `net` and write its embedding network to `out`."""
    check_writable(out, "--export_out")
    net.loadParameters(checkpoint)
    net.cpu()
    difference, size = export(net, fmt, out)
    # The exported network takes samples as its audio protocol feeds them (voxtrainer/reading/audio.py).
    scale = "in [-1, 1) (int16 / 32768)" if net.protocol == "2021" else "in int16 range"
    log.info("Exported %s (%s) as %s to %s: waveform (batch, samples) float32 at 16 kHz %s -> "
             "embedding (batch, %d); max relative difference to PyTorch %.2g" % (
                 checkpoint, type(net.__S__).__name__, fmt, out, scale, size, difference))
