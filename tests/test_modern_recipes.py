"""WeSpeaker's training ingredients: the margin schedule, sub-centre AAM with the inter-top-k
penalty, the warm-up + exponential LR set before every step, SGD with Nesterov momentum. Each is
checked against its formula written out here (float64, torch.autograd for the gradients), and a run
using all of them resumes after kill -9 into the same model bits."""

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

import trainSpeakerNet
from voxtrainer.cli.flags import build_parser, parse_args
from conftest import ROOT, train_killed_and_resumed, training_flags
from loss.aamsoftmax import LossFunction as AAMSoftmax
from scheduler.warmup_exp import Scheduler as WarmupExp
from voxtrainer.config import read_config
from voxtrainer.training.schedules import MarginSchedule

N_OUT, N_CLASSES = 8, 6


def inputs(seed=0, batch=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, N_OUT, generator=g), torch.randint(0, N_CLASSES, (batch,), generator=g)


# ---------- the loss, against its formula ----------

def reference_logits(x, weight, label, m, s, K=1, k_top=0, m_hard=0.0):
    """WeSpeaker's ArcMarginProduct_intertopk_subcenter written out with angles: class cosine = max
    over the class's K centres (rows c*K .. c*K+K-1); the target gets cos(theta + m) (or the seed's
    linear fallback past pi - m), the k_top largest non-target cosines cos(theta - m_hard)."""
    cos = F.normalize(x, dim=1) @ F.normalize(weight, dim=1).T
    cos = cos.reshape(len(x), -1, K).max(dim=2).values
    rows = []
    for i in range(len(x)):
        y = int(label[i])
        hard = sorted((j for j in range(cos.shape[1]) if j != y), key=lambda j: -float(cos[i, j].detach()))[:k_top]
        row = []
        for j in range(cos.shape[1]):
            theta = torch.acos(cos[i, j].clamp(-1, 1))
            if j == y:
                past = float(theta.detach()) >= math.pi - m  # the seed's linear fallback there
                row.append(cos[i, j] - math.sin(math.pi - m) * m if past else torch.cos(theta + m))
            elif j in hard:
                row.append(torch.cos(theta - m_hard))
            else:
                row.append(cos[i, j])
        rows.append(torch.stack(row))
    return s * torch.stack(rows)


def check_against_reference(module, x, label, m, s, K=1, k_top=0, m_hard=0.0):
    x = x.clone().requires_grad_(True)
    loss, acc = module(x, label)
    loss.backward()
    x64 = x.detach().double().requires_grad_(True)
    w64 = module.weight.detach().double().requires_grad_(True)
    logits = reference_logits(x64, w64, label, m, s, K, k_top, m_hard)
    ref = F.cross_entropy(logits, label)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert acc == pytest.approx(100.0 * (logits.argmax(1) == label).double().mean().item())
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(module.weight.grad.double(), w64.grad, rtol=1e-4, atol=1e-5)


def test_subcentre_aam_takes_each_class_cosine_from_its_closest_centre():
    module = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.2, scale=30, subcenters=3)
    assert module.weight.shape == (N_CLASSES * 3, N_OUT)
    x, label = inputs()
    check_against_reference(module, x, label, 0.2, 30, K=3)


def test_inter_topk_penalises_the_k_hardest_negatives_by_cos_theta_minus_m_prime():
    module = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.2, scale=30, subcenters=2, intertopk=2,
                        intertopk_margin=0.06)
    x, label = inputs(1)
    check_against_reference(module, x, label, 0.2, 30, K=2, k_top=2, m_hard=0.06)


def test_inter_topk_margin_scales_with_the_margin_in_force_and_is_off_at_margin_0():
    module = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.3, scale=20, intertopk=3, intertopk_margin=0.09)
    x, label = inputs(2)
    module.set_margin(0.1)  # a third of the target margin: a third of the inter-top-k margin
    check_against_reference(module, x, label, 0.1, 20, k_top=3, m_hard=0.03)
    module.zero_grad()
    module.set_margin(0.0)  # WeSpeaker: no penalty while the margin is at most 0.001
    check_against_reference(module, x, label, 0.0, 20)


def test_set_margin_puts_a_new_angular_margin_in_force_like_a_loss_built_with_it():
    x, label = inputs(3)
    scheduled = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.2, scale=30)
    scheduled.set_margin(0.35)
    built = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.35, scale=30)
    with torch.no_grad():
        built.weight.copy_(scheduled.weight)
    assert torch.equal(scheduled(x, label)[0], built(x, label)[0])
    check_against_reference(scheduled, x, label, 0.35, 30)


def test_the_options_off_leave_the_head_and_its_checkpoint_keys_the_original():
    module = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.2, scale=30)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {"weight": (N_CLASSES, N_OUT)}
    check_against_reference(module, *inputs(4), 0.2, 30)


# ---------- the margin schedule, against WeSpeaker's MarginScheduler ----------

def wespeaker_margin(it, epoch_iter, start_epoch, fix_epoch, initial, final, kind):
    """MarginScheduler.step's margin at iteration `it` (0-based), written out."""
    start, fix = (start_epoch - 1) * epoch_iter, (fix_epoch - 1) * epoch_iter
    if it >= fix:
        return final
    if it < start:
        return initial
    t = (it - start) / (fix - start)
    ratio = 1.0 - math.exp(t * math.log(1e-3 / (1.0 + 1e-6))) if kind == "exp" else t
    return initial + (final - initial) * ratio


@pytest.mark.parametrize("kind", ["exp", "linear"])
def test_margin_schedule_follows_wespeakers_formula_at_every_step(kind):
    loss = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.2, scale=30)
    schedule = MarginSchedule(loss, 0.0, 0.2, start_epoch=3, end_epoch=6, kind=kind)
    epoch_iter, seen = 7, []
    for epoch in range(1, 9):
        for step in range(epoch_iter):
            schedule.set_position(epoch, step, epoch_iter)
            expected = wespeaker_margin((epoch - 1) * epoch_iter + step, epoch_iter, 3, 6, 0.0, 0.2, kind)
            assert loss.m == pytest.approx(expected, abs=1e-12)
            assert loss.cos_m == pytest.approx(math.cos(expected), abs=1e-12)
            seen.append(loss.m)
    assert seen[:2 * epoch_iter] == [0.0] * (2 * epoch_iter)           # epochs 1-2: the initial margin
    assert all(a < b for a, b in zip(seen[2 * epoch_iter:5 * epoch_iter], seen[2 * epoch_iter + 1:5 * epoch_iter]))
    assert seen[5 * epoch_iter:] == [0.2] * (3 * epoch_iter)           # from epoch 6 on: the full margin
    if kind == "exp":  # WeSpeaker's rise is fast at first: 1 - 1e-3 ** (3/21) > 60% a seventh of the way in
        assert seen[2 * epoch_iter + 3] > 0.6 * 0.2


def test_margin_schedule_starting_and_ending_together_is_the_full_margin_at_once():
    loss = AAMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.5, scale=30)
    schedule = MarginSchedule(loss, 0.5, 0.5, start_epoch=1, end_epoch=1)  # WeSpeaker's large-margin fine-tuning
    schedule.set_position(1, 0, 10)
    assert loss.m == 0.5


def test_amsoftmax_takes_a_margin_schedule_too():
    from loss.amsoftmax import LossFunction as AMSoftmax
    loss = AMSoftmax(nOut=N_OUT, nClasses=N_CLASSES, margin=0.3, scale=30)
    MarginSchedule(loss, 0.0, 0.3, start_epoch=2, end_epoch=3, kind="linear").set_position(2, 1, 4)
    assert loss.m == pytest.approx(0.3 / 4)


def test_run_epoch_sets_every_per_batch_schedule_before_each_step():
    from voxtrainer.training.loop import run_epoch

    class Recorder:
        per_batch = True

        def __init__(self, weight):
            self.weight, self.calls = weight, []

        def set_position(self, epoch, step, steps):
            self.calls.append((epoch, step, steps, float(self.weight.detach())))  # the weight before this step

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, data, label):
            return (self.w * data).sum(), 0.0

    model = Toy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = Recorder(model.w)
    loader = [(torch.ones(2, 1, 3), torch.zeros(2, dtype=torch.long))] * 3
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    run_epoch(model, loader, optimizer, scaler, torch.device("cpu"), False, 5, show_progress=False,
              per_batch=[recorder])
    assert [call[:3] for call in recorder.calls] == [(5, 0, 3), (5, 1, 3), (5, 2, 3)]
    assert [call[3] for call in recorder.calls] == pytest.approx([1.0, 0.4, -0.2])  # before steps 1, 2, 3


# ---------- the LR schedule, against WeSpeaker's ExponentialDecrease ----------

def wespeaker_lr(it, epoch_iter, num_epochs, initial, final, warm_up_epoch, scale_ratio):
    """ExponentialDecrease(warm_from_zero=True).get_current_lr at iteration `it`, written out."""
    max_iter, warm_iter = num_epochs * epoch_iter, warm_up_epoch * epoch_iter
    coeff = scale_ratio * it / warm_iter if it < warm_iter else scale_ratio
    return coeff * initial * math.exp((it / max_iter) * math.log(final / initial))


@pytest.mark.parametrize("warmup,scale", [(2, 1.0), (0, 1.0), (1.5, 4.0)])
def test_warmup_exp_sets_wespeakers_lr_before_every_step(warmup, scale):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = WarmupExp(optimizer, lr=0.1, final_lr=5e-5, warmup_epochs=warmup, max_epoch=6, lr_scale=scale,
                          test_interval=1, lr_decay=0.95)
    assert scheduler.per_batch and scheduler.base_lrs == [0.1]
    epoch_iter = 4
    for epoch in range(1, 7):
        for step in range(epoch_iter):
            scheduler.set_position(epoch, step, epoch_iter)
            expected = wespeaker_lr((epoch - 1) * epoch_iter + step, epoch_iter, 6, 0.1, 5e-5, warmup, scale)
            assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        scheduler.step()  # the per-epoch call changes nothing
    if warmup:
        scheduler.set_position(1, 0, epoch_iter)
        assert optimizer.param_groups[0]["lr"] == 0.0  # warm-up from zero: the first step does not move
    scheduler.set_position(7, 0, epoch_iter)  # after --max_epoch epochs: scale x the final LR
    assert optimizer.param_groups[0]["lr"] == pytest.approx(scale * 5e-5, rel=1e-12)


def test_warmup_exp_restores_its_saved_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    saved = WarmupExp(optimizer, lr=0.1, final_lr=5e-5, warmup_epochs=6, max_epoch=150).state_dict()
    other = WarmupExp(optimizer, lr=0.5, final_lr=1e-3, warmup_epochs=1, max_epoch=10)
    other.load_state_dict(saved)
    other.set_position(40, 3, 10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(wespeaker_lr(393, 10, 150, 0.1, 5e-5, 6, 1.0), rel=1e-12)
    assert other.base_lrs == [0.1]


# ---------- SGD with Nesterov momentum ----------

def test_sgd_nesterov_momentum_and_weight_decay_follow_the_update_rule():
    from optimizer.sgd import Optimizer
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = Optimizer([w], lr=0.1, weight_decay=1e-4, momentum=0.8, nesterov=True)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.8, True, 1e-4)
    ref, velocity = w.detach().clone(), torch.zeros(2, dtype=torch.float64)
    for target in ([0.5, 0.5], [-1.0, 3.0], [2.0, 0.0]):
        target = torch.tensor(target, dtype=torch.float64)
        optimizer.zero_grad()
        ((w - target) ** 2).sum().backward()
        optimizer.step()
        g = 2 * (ref - target) + 1e-4 * ref
        velocity = 0.8 * velocity + g
        ref = ref - 0.1 * (g + 0.8 * velocity)
        torch.testing.assert_close(w.detach(), ref, rtol=0, atol=1e-15)


def test_sgd_keeps_the_originals_settings_by_default():
    from optimizer.sgd import Optimizer
    group = Optimizer([torch.nn.Parameter(torch.zeros(1))], lr=0.1).param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, False, 5e-5)


# ---------- the command line ----------

def demo_flags(demo, save_path, *extra):
    return training_flags(demo, save_path, "--model", "ResNetSE34L", *extra, batch_size=2)


def test_new_flags_are_off_by_default_and_yaml_accepts_them(tmp_path):
    args = parse_args([])
    assert (args.margin_start_epoch, args.subcenters, args.intertopk, args.warmup_epochs, args.lr_reference_batch,
            args.momentum, args.nesterov) == (0, 1, 0, 0, 0, None, False)
    config = tmp_path / "c.yaml"
    config.write_text("margin_start_epoch: 20\nmargin_end_epoch: 40\nmargin_rise: linear\nsubcenters: 3\n"
                      "intertopk: 5\nintertopk_margin: 0.06\nfinal_lr: 5.0e-5\nwarmup_epochs: 6\n"
                      "lr_reference_batch: 64\nmomentum: 0.9\nnesterov: true\nscheduler: warmup_exp\n")
    args = parse_args(["--config", str(config)])
    assert (args.margin_start_epoch, args.margin_end_epoch, args.margin_rise, args.subcenters, args.intertopk,
            args.final_lr, args.warmup_epochs, args.lr_reference_batch, args.nesterov) == (
        20, 40, "linear", 3, 5, 5e-5, 6, 64, True)
    config.write_text("subcenters: 0\n")
    with pytest.raises(Exception, match="subcenters"):
        read_config(str(config), build_parser())


@pytest.mark.parametrize("extra,needle", [
    (["--trainfunc", "softmax", "--subcenters", "2"], "--subcenters: --trainfunc softmax does not take it"),
    (["--trainfunc", "amsoftmax", "--intertopk", "2"], "--intertopk: --trainfunc amsoftmax does not take it"),
    (["--trainfunc", "aamsoftmax", "--nesterov"], "--nesterov: --optimizer adam does not take it"),
    (["--trainfunc", "aamsoftmax", "--lr_reference_batch", "64"], "--lr_reference_batch: --scheduler steplr"),
    (["--trainfunc", "softmax", "--margin_start_epoch", "2", "--margin_end_epoch", "3"], "no margin to schedule"),
    (["--trainfunc", "aamsoftmax", "--margin_start_epoch", "2"], "needs --margin_end_epoch"),
    (["--trainfunc", "aamsoftmax", "--margin_start_epoch", "3", "--margin_end_epoch", "2"], "start <= end"),
    (["--trainfunc", "aamsoftmax", "--optimizer", "sgd", "--nesterov", "--momentum", "0"], "--nesterov needs"),
    (["--trainfunc", "aamsoftmax", "--scheduler", "warmup_exp", "--final_lr", "0"], "must be above 0"),
])
def test_new_flags_where_they_do_not_apply_are_one_line(demo, tmp_path, capsys, extra, needle):
    assert trainSpeakerNet.main(demo_flags(demo, tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


RECIPE = ["--trainfunc", "aamsoftmax", "--nClasses", "6", "--margin", "0.2", "--scale", "30", "--subcenters", "2",
          "--intertopk", "2", "--margin_start_epoch", "2", "--margin_end_epoch", "4", "--optimizer", "sgd",
          "--nesterov", "--weight_decay", "1e-4", "--scheduler", "warmup_exp", "--lr", "0.1", "--final_lr", "0.001",
          "--warmup_epochs", "1.5", "--lr_reference_batch", "4"]


def command(demo, save_path):
    return [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"),
            *demo_flags(demo, save_path, "--max_epoch", "4", *RECIPE)]


def test_a_run_with_the_whole_recipe_killed_mid_epoch_resumes_into_the_same_model(demo, tmp_path):
    # Killed in epoch 3, where the margin is rising.
    train_killed_and_resumed(lambda save_path: command(demo, save_path), tmp_path / "a", tmp_path / "b")
    for epoch in (2, 3, 4):
        final = "model/model%09d.model" % epoch
        assert (tmp_path / "a" / final).read_bytes() == (tmp_path / "b" / final).read_bytes()
    weights = torch.load(tmp_path / "a" / "model" / "model000000004.model", weights_only=True)
    assert weights["__L__.weight"].shape == (12, 32)  # 2 centres for each of the 6 classes
    # Each epoch's line shows the LR of its first step: GPUs x batch / reference = 1 x 2 / 4.
    lrs = [float(line.split(",")[1].split()[1]) for line in open(tmp_path / "a" / "result" / "scores.txt")
           if line.startswith("IT ")]
    expected = [0.5 * (e / 1.5 if e < 1.5 else 1.0) * 0.1 * math.exp(e / 4 * math.log(0.001 / 0.1)) for e in range(4)]
    assert lrs == pytest.approx([round(value, 6) for value in expected], abs=1e-6)


def test_the_trainer_sets_the_scheduled_margin_before_every_step(demo, tmp_path, monkeypatch):
    import loss.aamsoftmax
    seen = []
    original = loss.aamsoftmax.LossFunction.set_margin

    def recording(self, margin):
        seen.append(margin)
        original(self, margin)
    monkeypatch.setattr(loss.aamsoftmax.LossFunction, "set_margin", recording)
    assert trainSpeakerNet.main(demo_flags(demo, tmp_path, "--trainfunc", "aamsoftmax", "--nClasses", "6",
                                           "--margin", "0.3", "--max_epoch", "2", "--test_interval", "2",
                                           "--margin_start_epoch", "1", "--margin_end_epoch", "3",
                                           "--margin_rise", "linear")) == 0
    rising = seen[1:]  # after the constructor's
    assert rising[0] == 0.0 and all(a <= b for a, b in zip(rising, rising[1:])) and 0.1 < rising[-1] < 0.3
    assert len(set(rising)) > 10  # a new margin at every step, not once per epoch
