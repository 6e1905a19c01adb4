"""What the tests of WeSpeaker's networks share: deterministic weights for a list of WeSpeaker
state_dict keys, a checkpoint file as WeSpeaker publishes it, speech-like test audio, and the
embedding comparison. The reference values these are compared with were computed by WeSpeaker's
own code (tests/data/README.md says how, per network)."""

import os

import numpy
import torch

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SAMPLE_RATE = 16000
PROJECTION_CLASSES = 17982  # VoxCeleb2 dev x 3 (speed perturbation), the published checkpoints' head


def seeded_weights(keys):
    """A state_dict for `keys` ([name, shape] pairs in WeSpeaker's order), every tensor drawn from
    its own seeded numpy stream: conv and linear weights ~ N(0, 1/fan_in), biases and running
    means small, BatchNorm scales and running variances positive, so activations stay in a sane
    range through the network. num_batches_tracked is a float, as WeSpeaker's checkpoint averaging
    leaves it."""
    state = {}
    for index, (name, shape) in enumerate(keys):
        rng = numpy.random.RandomState(index)
        if name.endswith("num_batches_tracked"):
            value = numpy.array(1234.0)
        elif name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.endswith(("running_mean", "bias")):
            value = rng.randn(*shape) * 0.1
        elif len(shape) == 1:  # BatchNorm scale
            value = rng.uniform(0.5, 1.0, shape)
        else:
            value = rng.randn(*shape) / numpy.sqrt(numpy.prod(shape[1:]))
        state[name] = torch.from_numpy(numpy.asarray(value, dtype=numpy.float32))
    return state


def published_checkpoint(state, embedding_size, path):
    """A file as WeSpeaker publishes it (avg_model.pt): the model's state_dict and the training
    head `projection.weight` (classes x embedding)."""
    state = dict(state)
    rng = numpy.random.RandomState(99)
    state["projection.weight"] = torch.from_numpy(
        rng.randn(PROJECTION_CLASSES, embedding_size).astype(numpy.float32))
    torch.save(state, path)
    return str(path)


def speech_like_waveform(samples):
    """Deterministic speech-like test audio in int16 range: a gliding harmonic tone, noise, a DC
    offset and a stretch of digital silence (Kaldi's log floor)."""
    rng = numpy.random.RandomState(samples)
    t = numpy.arange(samples) / SAMPLE_RATE
    f0 = 120 + 40 * numpy.sin(2 * numpy.pi * 1.3 * t)
    phase = 2 * numpy.pi * numpy.cumsum(f0) / SAMPLE_RATE
    wave = sum(2500 / h * numpy.sin(h * phase) for h in range(1, 12)) + 300 * rng.randn(samples) + 150
    wave[samples // 3: samples // 3 + 800] = 0
    return numpy.clip(numpy.round(wave), -32768, 32767).astype(numpy.int16)


def assert_same_embeddings(ours, expected, relative=1e-4):
    ours, expected = numpy.asarray(ours, dtype=numpy.float64), numpy.asarray(expected, dtype=numpy.float64)
    assert ours.shape == expected.shape
    for a, b in zip(ours, expected):
        assert a @ b / numpy.linalg.norm(a) / numpy.linalg.norm(b) >= 0.9999
        # Measured on a 2-core Xeon: about 5e-7 for ResNet34; the bound leaves room for other BLAS libraries.
        assert numpy.linalg.norm(a - b) / numpy.linalg.norm(b) <= relative


def assert_fbank_float32_under_bf16(net, waveform):
    """Under bf16 autocast the network's Kaldi fbank (net.__S__.fbank) stays float32 and the
    embedding stays close to the float32 one."""
    seen = {}

    def record(module, inputs, output):
        seen.setdefault("fbank", output.dtype)
    net.__S__.fbank.register_forward_hook(record)
    waveform = torch.from_numpy(numpy.asarray(waveform, dtype=numpy.float32))[None]
    with torch.no_grad():
        full = net.__S__(waveform)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net.__S__(waveform).float()
    assert seen["fbank"] == torch.float32
    assert torch.nn.functional.cosine_similarity(full, half).item() > 0.99


def reference_arrays(name):
    """The arrays of tests/data/<name>, the values WeSpeaker's own code computed (no pickles)."""
    with numpy.load(os.path.join(DATA, name), allow_pickle=False) as stored:
        return dict(stored)
