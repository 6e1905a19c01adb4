"""The faster training paths change no number: int16 crops between processes, the epoch loop that
reads its loss only when it prints, the multi-tensor Adam, and --compile's fallback to eager.
(Speed itself is measured by benchmarks, never here.)"""

import copy
import random

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from optimizer.adam import Optimizer as ProjectAdam
from voxtrainer.training import loop as training
from voxtrainer.training import step as step_module
from voxtrainer.reading.datasets import TrainDataset, as_int16_if_lossless, collate_groups, make_train_loader
from voxtrainer.reading.lists import TrainList
from voxtrainer.network import SpeakerNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MAX_FRAMES = 20


@pytest.fixture(scope="module")
def train_list(demo):
    return TrainList(demo.train_list, demo.train_path)


def bits(tensor):
    """A float32 tensor's bit patterns: equal bits, not just equal values (-0.0 != 0.0 here)."""
    return tensor.float().contiguous().view(torch.int32)


def batches(train_list, workers, seed=3, **kwargs):
    loader, sampler = make_train_loader(train_list, MAX_FRAMES, 2, 100, 2, workers, seed, **kwargs)
    sampler.set_epoch(1)
    return list(loader)


# -- int16 crops ------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_16_bit_audio_is_sent_as_int16_and_gives_bit_identical_float_batches(train_list, monkeypatch, workers):
    as_int16 = batches(train_list, workers)
    monkeypatch.setattr("voxtrainer.reading.datasets.as_int16_if_lossless", lambda crops: None)  # the float32 path
    as_float = batches(train_list, workers)
    assert len(as_int16) == len(as_float) > 0
    for (crops16, labels16), (crops32, labels32) in zip(as_int16, as_float):
        assert crops16.dtype == torch.int16 and crops32.dtype == torch.float32
        assert torch.equal(bits(crops16), bits(crops32)) and torch.equal(labels16, labels32)
        on_device, _ = step_module.batch_to_device(crops16, labels16, torch.device("cpu"))
        assert on_device.dtype == torch.float32 and torch.equal(bits(on_device), bits(crops32))


def test_crops_that_int16_cannot_hold_exactly_stay_float32():
    assert as_int16_if_lossless(numpy.array([[0.0, -3.0, 32767.0, -32768.0]], numpy.float32)).dtype == numpy.int16
    for value in (0.5, 32768.0, -32769.0, 1e9, -0.0, numpy.nan):
        assert as_int16_if_lossless(numpy.array([[1.0, value]], numpy.float32)) is None


def test_a_batch_mixing_int16_and_float_groups_is_float32_with_the_same_values():
    int_group = torch.tensor([[1, -2, 3]], dtype=torch.int16)
    float_group = torch.tensor([[0.5, -0.0, 7.0]])
    crops, labels = collate_groups([(int_group, 0), (float_group, 1)])
    assert crops.dtype == torch.float32 and labels.tolist() == [0, 1]
    assert torch.equal(bits(crops), bits(torch.stack([int_group.float(), float_group])))


def test_float_wav_crops_with_fractions_and_augmented_crops_are_sent_as_float32(train_list, tmp_path):
    path = tmp_path / "float.wav"
    soundfile.write(str(path), (numpy.random.default_rng(0).normal(0, 0.1, 16000)).astype(numpy.float32), 16000,
                    subtype="FLOAT")
    listed = tmp_path / "list.txt"
    listed.write_text("id0 float.wav\nid0 float.wav\n")
    crops, _ = TrainDataset(TrainList(str(listed), str(tmp_path)), MAX_FRAMES)[
        training_group((0, 1))]
    assert crops.dtype == torch.float32 and not torch.equal(crops, crops.round())

    augmented = TrainDataset(train_list, MAX_FRAMES, augment=lambda crop, rng: crop)
    plain = TrainDataset(train_list, MAX_FRAMES)
    crops_aug, _ = augmented[training_group((0, 1))]
    crops_plain, _ = plain[training_group((0, 1))]
    assert crops_aug.dtype == torch.float32 and crops_plain.dtype == torch.int16
    assert torch.equal(bits(crops_aug), bits(crops_plain))


def training_group(utterances, label=0, seed=11):
    from voxtrainer.reading.datasets import Group
    return Group(tuple(utterances), label, seed)


# -- the epoch loop ---------------------------------------------------------------------------

def make_training(seed=0, trainfunc="angleproto"):
    torch.manual_seed(seed)
    net = SpeakerNet(model="ResNetSE34L", trainfunc=trainfunc, nOut=32, nClasses=6)
    return net, ProjectAdam(net.parameters(), lr=0.01), torch.amp.GradScaler("cpu", enabled=False)


def step_by_step_epoch(model, loader, optimizer, scaler):
    """The epoch loop as it was: every step's loss and metric read as Python floats."""
    model.train()
    total_loss, total_metric, steps = 0.0, 0.0, 0
    for data, label in loader:
        data, label = data.float(), label
        loss, metric = step_module.train_step(model, data, label, optimizer, scaler, False)
        total_loss += loss.item()
        total_metric += float(metric)
        steps += 1
    return training.EpochResult(total_loss / steps, total_metric / steps, steps)


@pytest.mark.parametrize("trainfunc", ["angleproto", "triplet"])
def test_the_epoch_loop_that_reads_the_loss_when_it_prints_gives_the_same_weights_and_means(
        train_list, monkeypatch, trainfunc):
    loader = batches(train_list, 0)
    results, states = [], []
    for loop in ("step_by_step", "deferred"):
        net, optimizer, scaler = make_training(trainfunc=trainfunc)
        random.seed(5)  # triplet's negative mining draws from Python's generator
        if loop == "step_by_step":
            result = step_by_step_epoch(net, loader, optimizer, scaler)
        else:
            monkeypatch.setattr(training, "PROGRESS_INTERVAL_S", 0.0)  # a reading after every step, too
            result = training.run_epoch(net, loader, optimizer, scaler, torch.device("cpu"), False, 1)
        results.append(result)
        states.append(net.state_dict())
    assert results[0] == results[1] and results[0].steps == len(loader)
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])


def test_running_totals_of_device_tensors_equal_the_python_float_sums():
    rng = numpy.random.default_rng(0)
    losses = [torch.tensor(value, dtype=torch.float32) for value in rng.uniform(0, 10, 50)]
    metrics = [int(count) * (100.0 / 7) for count in rng.integers(0, 8, 50)]
    as_floats, as_tensors = training.RunningTotals(), training.RunningTotals()
    python_loss, python_metric = 0.0, 0.0
    for loss, metric in zip(losses, metrics):
        as_floats.add(loss, metric)
        as_tensors.add(loss, torch.tensor(metric, dtype=torch.float64))  # how top1_accuracy reports on CUDA
        python_loss += loss.item()
        python_metric += metric
    expected = (python_loss / 50, python_metric / 50)
    assert as_floats.means() == expected and as_tensors.means() == expected


def test_top1_accuracy_reads_the_same_from_its_tensor_form():
    from loss.accuracy import top1_accuracy
    logits = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    correct = int((logits.argmax(dim=1) == target).sum())
    assert top1_accuracy(logits, target) == correct * (100.0 / 7)


# -- the optimizer ----------------------------------------------------------------------------

@pytest.mark.parametrize("weight_decay", [None, 1e-3])
def test_the_project_adam_is_bit_identical_to_torchs_default_adam_also_after_loading_its_state(weight_decay):
    generator = torch.Generator().manual_seed(2)
    data = torch.randn(3, 2, MAX_FRAMES * 160 + 240, generator=generator) * 3000
    label = torch.arange(3)
    nets, optimizers = [], []
    for make in (lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=weight_decay or 0.0),
                 lambda p: ProjectAdam(p, lr=0.01, weight_decay=weight_decay)):
        torch.manual_seed(0)
        nets.append(SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32))
        optimizers.append(make(nets[-1].parameters()))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for step in range(4):
        if step == 2:  # the project Adam resumes from the default Adam's state, as from an older checkpoint
            optimizers[1].load_state_dict(copy.deepcopy(optimizers[0].state_dict()))
            assert optimizers[1].param_groups[0]["foreach"] is True
        for net, optimizer in zip(nets, optimizers):
            step_module.train_step(net, data * (step + 1), label, optimizer, scaler, False)
        assert all(torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[1].parameters()))
    assert optimizers[0].param_groups[0]["foreach"] is None  # CPU default: the per-parameter loop


# -- --compile --------------------------------------------------------------------------------

def failing_compile(model, **kwargs):
    """A torch.compile whose compiled model runs part of the forward (so BatchNorm statistics and
    the random generators move) and then fails, as a compiler error can."""
    def compiled(data, label):
        model.__S__(data[:, 0])
        random.random()
        torch.rand(1)
        raise AssertionError("expected len(self.block_stack) == 1 to be true\nfrom user code: ...")
    return compiled


def test_compile_failure_falls_back_to_eager_with_one_warning_and_the_same_numbers(train_list, monkeypatch, capsys):
    loader = batches(train_list, 0)
    states = []
    for compiled in (False, True):
        net, optimizer, scaler = make_training()
        random.seed(1)
        torch.manual_seed(1)
        if compiled:
            monkeypatch.setattr(torch, "compile", failing_compile)
            model = training.CompiledTraining(net)
        else:
            model = net
        for epoch in (1, 2):
            training.run_epoch(model, loader, optimizer, scaler, torch.device("cpu"), False, epoch,
                               show_progress=False)
        states.append((net.state_dict(), random.random(), torch.rand(1)))
    (eager, eager_py, eager_torch), (fallback, fallback_py, fallback_torch) = states
    assert all(torch.equal(eager[name], fallback[name]) for name in eager)
    assert eager_py == fallback_py and torch.equal(eager_torch, fallback_torch)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "torch.compile" in line]
    assert warnings == ["WARNING: --compile: torch.compile failed (AssertionError: expected len(self.block_stack) "
                        "== 1 to be true); training without it"]


def test_compile_flag_through_the_trainer_falls_back_and_saves_the_eager_runs_model(demo, tmp_path, monkeypatch,
                                                                                    capsys):
    flags = ["--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nPerSpeaker", "2", "--train_list",
             demo.train_list, "--test_list", demo.test_list, "--train_path", demo.train_path, "--test_path",
             demo.test_path, "--nOut", "32", "--max_frames", str(MAX_FRAMES), "--batch_size", "3",
             "--max_epoch", "1", "--test_interval", "1", "--nDataLoaderThread", "0"]
    assert trainSpeakerNet.main(flags + ["--save_path", str(tmp_path / "eager")]) == 0
    monkeypatch.setattr(torch, "compile", failing_compile)
    assert trainSpeakerNet.main(flags + ["--save_path", str(tmp_path / "compiled"), "--compile"]) == 0
    assert capsys.readouterr().err.count("--compile: torch.compile failed") == 1
    model = "model/model000000001.model"
    assert (tmp_path / "eager" / model).read_bytes() == (tmp_path / "compiled" / model).read_bytes()
