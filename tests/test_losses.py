"""Specification tests for loss/: every loss is checked against an independent
NumPy (float64) computation of its formula, on small hand-checkable cases."""
import importlib
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loss.accuracy import top1_accuracy
from loss.base import SpeakerLoss
from loss.pair_mining import mine_negatives
from tuneThreshold import tuneThresholdfromScore

ALL_LOSSES = ["softmax", "amsoftmax", "aamsoftmax", "ge2e", "proto", "triplet", "contrastive", "angleproto"]
CLASSIFIERS = ["softmax", "amsoftmax", "aamsoftmax"]
NO_PARAMETERS = ["proto", "triplet", "contrastive"]
N_OUT, N_CLASSES = 8, 5
EPS = 1e-6  # F.pairwise_distance adds this to the difference before the norm


def make_loss(name, **kwargs):
    kwargs = {"nOut": N_OUT, "nClasses": N_CLASSES, "margin": 0.1, "scale": 15,
              "hard_rank": 0, "hard_prob": 1.0, **kwargs}
    return importlib.import_module(f"loss.{name}").LossFunction(**kwargs)


def make_input(name, seed=0, n_per_speaker=3):
    g = torch.Generator().manual_seed(seed)
    if name in CLASSIFIERS:
        return torch.randn(6, N_OUT, generator=g), torch.randint(0, N_CLASSES, (6,), generator=g)
    if name in ("triplet", "contrastive"):
        n_per_speaker = 2
    return torch.randn(4, n_per_speaker, N_OUT, generator=g), torch.arange(4)


# ---------- independent NumPy references ----------

def np_cross_entropy(logits, target):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(target)), target].mean()


def np_top1(logits, target):
    return 100.0 * np.mean(np.argmax(logits, axis=1) == np.asarray(target))


def np_cos(a, b):
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))


def np_unit(v):
    return v / max(np.linalg.norm(v), 1e-12)


def np_dist(a, b):
    return np.linalg.norm(a - b + EPS)


def numeric_grad(f, arr, h=1e-6):
    """Central differences of the scalar f() with respect to arr (modified in place)."""
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + h
        up = f()
        arr[idx] = old - h
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def f64(t):
    return t.detach().double().numpy().copy()


def assert_grad_matches(tensor, numeric):
    np.testing.assert_allclose(tensor.grad.double().numpy(), numeric, rtol=1e-3, atol=1e-5)


def ref_amsoftmax_logits(x, W, label, m, s):
    cos = np.array([[np_cos(xi, wc) for wc in W.T] for xi in x])
    cos[np.arange(len(label)), label] -= m
    return s * cos


def ref_aamsoftmax_logits(x, weight, label, m, s):
    logits = np.array([[np_cos(xi, wc) for wc in weight] for xi in x])
    for row, y in enumerate(label):
        theta = math.acos(np.clip(logits[row, y], -1, 1))
        if theta < math.pi - m:
            logits[row, y] = math.cos(theta + m)
        else:  # past pi - m: linear penalty instead of the (non-monotonic) angular margin
            logits[row, y] -= math.sin(math.pi - m) * m
    return s * logits


def ref_ge2e_logits(x, w, b):
    n_spk, n_utt, _ = x.shape
    logits = np.zeros((n_spk * n_utt, n_spk))
    for i in range(n_spk):
        for j in range(n_utt):
            for k in range(n_spk):
                members = np.delete(x[k], j, axis=0) if k == i else x[k]
                logits[i * n_utt + j, k] = max(np_cos(x[i, j], members.mean(axis=0)), 1e-6) * w + b
    return logits, np.repeat(np.arange(n_spk), n_utt)


def ref_proto_logits(x):
    query, proto = x[:, 0], x[:, 1:].mean(axis=1)
    return np.array([[-np_dist(q, p) ** 2 for p in proto] for q in query])


def ref_angleproto_logits(x, w, b):
    query, proto = x[:, 0], x[:, 1:].mean(axis=1)
    return np.array([[np_cos(q, p) * w + b for p in proto] for q in query])


def ref_pair_distances(x, negidx):
    anchor = np.array([np_unit(v) for v in x[:, 0]])
    positive = np.array([np_unit(v) for v in x[:, 1]])
    pos = np.array([np_dist(a, p) for a, p in zip(anchor, positive)])
    neg = np.array([np_dist(a, positive[n]) for a, n in zip(anchor, negidx)])
    return pos, neg


def ref_hardest_negatives(x):
    anchor = np.array([np_unit(v) for v in x[:, 0]])
    positive = np.array([np_unit(v) for v in x[:, 1]])
    dist = np.array([[np_dist(a, p) for p in positive] for a in anchor])
    np.fill_diagonal(dist, np.inf)
    return dist.argmin(axis=1)


def ref_triplet_loss(x, negidx, margin):
    pos, neg = ref_pair_distances(x, negidx)
    return np.maximum(pos ** 2 - neg ** 2 + margin, 0).mean()


def ref_contrastive_loss(x, negidx, margin):
    pos, neg = ref_pair_distances(x, negidx)
    return np.concatenate([pos ** 2, np.maximum(margin - neg, 0) ** 2]).mean()


# ---------- accuracy ----------

def test_top1_accuracy_is_percent_of_rows_whose_argmax_is_the_target():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    acc = top1_accuracy(logits, torch.tensor([1, 0, 0, 1]))
    assert isinstance(acc, float)
    assert acc == pytest.approx(50.0)


# ---------- interface ----------

@pytest.mark.parametrize("name,train,test", [
    ("angleproto", True, True), ("ge2e", True, True), ("triplet", True, True),
    ("contrastive", True, True), ("softmax", False, True), ("amsoftmax", False, True),
    ("aamsoftmax", False, True), ("proto", False, False)])
def test_normalisation_flags_are_class_attributes(name, train, test):
    cls = importlib.import_module(f"loss.{name}").LossFunction
    assert cls.train_normalize is train and cls.test_normalize is test


@pytest.mark.parametrize("name,expected", [
    ("softmax", {"fc.weight": (N_CLASSES, N_OUT), "fc.bias": (N_CLASSES,)}),
    ("amsoftmax", {"W": (N_OUT, N_CLASSES)}),
    ("aamsoftmax", {"weight": (N_CLASSES, N_OUT)}),
    ("ge2e", {"w": (), "b": ()}),
    ("angleproto", {"w": (), "b": ()}),
] + [(name, {}) for name in NO_PARAMETERS])
def test_checkpoint_parameter_names_and_shapes(name, expected):
    state = make_loss(name).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


@pytest.mark.parametrize("name", ["ge2e", "angleproto"])
def test_scale_and_bias_start_at_10_and_minus_5(name):
    loss = make_loss(name)
    assert loss.w.item() == 10.0 and loss.b.item() == -5.0


@pytest.mark.parametrize("name,param", [("amsoftmax", "W"), ("aamsoftmax", "weight")])
def test_margin_softmax_weights_use_xavier_normal_init(name, param):
    torch.manual_seed(0)
    weight = getattr(make_loss(name, nOut=512, nClasses=1000), param)
    assert weight.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert weight.std().item() == pytest.approx(math.sqrt(2.0 / (512 + 1000)), rel=0.02)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_constructor_ignores_unused_keyword_arguments(name):
    make_loss(name, nPerSpeaker=2, init_w=10.0, easy_margin=False, something_else="ignored")


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_forward_returns_scalar_loss_tensor_and_python_float_metric(name):
    random.seed(0)
    x, label = make_input(name)
    loss, metric = make_loss(name)(x, label)
    assert torch.is_tensor(loss) and loss.dim() == 0 and loss.dtype == torch.float32
    assert type(metric) is float


@pytest.mark.parametrize("name", ["ge2e", "proto", "angleproto", "triplet", "contrastive"])
def test_metric_losses_ignore_the_label(name):
    x, label = make_input(name)
    module = make_loss(name)
    random.seed(0)
    with_label = module(x, label)
    random.seed(0)
    with_other_label = module(x, torch.tensor([3, 3, 0, 1]))
    assert with_label[0].item() == with_other_label[0].item()
    assert with_label[1] == with_other_label[1]


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_logits_are_float32_under_autocast_and_for_low_precision_input(name):
    x, label = make_input(name)
    module = make_loss(name)
    random.seed(0)
    reference, _ = module(x, label)
    random.seed(0)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        autocast_loss, _ = module(x, label)
    assert autocast_loss.dtype == torch.float32
    assert autocast_loss.item() == pytest.approx(reference.item(), rel=1e-6, abs=1e-7)
    random.seed(0)
    low_precision_loss, _ = module(x.bfloat16(), label)
    assert low_precision_loss.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_losses_run_on_cuda_and_match_cpu(name):
    x, label = make_input(name)
    module = make_loss(name)
    random.seed(0)
    cpu_loss, cpu_metric = module(x, label)
    random.seed(0)
    cuda_loss, cuda_metric = module.cuda()(x.cuda(), label.cuda())
    assert cuda_loss.device.type == "cuda"
    assert cuda_loss.item() == pytest.approx(cpu_loss.item(), rel=1e-4, abs=1e-6)
    assert cuda_metric == pytest.approx(cpu_metric)


@pytest.mark.parametrize("name,count", [
    ("softmax", 1), ("amsoftmax", 1), ("aamsoftmax", 1), ("triplet", 2), ("contrastive", 2),
    ("ge2e", None), ("proto", None), ("angleproto", None)])
def test_every_loss_is_a_speaker_loss_with_its_utterances_per_speaker(name, count):
    cls = importlib.import_module(f"loss.{name}").LossFunction
    assert issubclass(cls, SpeakerLoss)
    assert cls.utterances_per_speaker == count


@pytest.mark.parametrize("flags", [{}, {"train_normalize": True}, {"test_normalize": False},
                                   {"train_normalize": 1, "test_normalize": True}])
def test_a_loss_without_both_normalisation_flags_fails_when_defined(flags):
    with pytest.raises(TypeError, match="normalize"):
        type("Forgetful", (SpeakerLoss,), {"forward_fp32": lambda self, x, label: (x.sum(), 0.0), **flags})


def test_a_loss_needs_a_forward_and_a_sane_utterance_count_but_a_family_base_may_defer():
    flags = {"train_normalize": True, "test_normalize": True}
    with pytest.raises(TypeError, match="forward_fp32"):
        type("NoForward", (SpeakerLoss,), dict(flags))
    with pytest.raises(TypeError, match="utterances_per_speaker"):
        type("NoUtterances", (SpeakerLoss,), {**flags, "utterances_per_speaker": 0,
                                               "forward_fp32": lambda self, x, label: (x.sum(), 0.0)})

    class Family(SpeakerLoss, abstract=True):
        pass

    class Member(Family):
        train_normalize, test_normalize = True, False

        def forward_fp32(self, x, label):
            return x.sum(), 0.0

    assert Member(nOut=3, unused="ignored")(torch.ones(2, 3), None)[0].item() == 6.0


def test_forward_fp32_sees_float32_with_autocast_off():
    seen = {}

    class Probe(SpeakerLoss):
        train_normalize, test_normalize = False, False

        def forward_fp32(self, x, label):
            seen.update(dtype=x.dtype, autocast=torch.is_autocast_enabled("cpu"))
            return (x @ x.T).sum(), 0.0

    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = Probe()(torch.ones(2, 3, dtype=torch.bfloat16), None)
    assert seen == {"dtype": torch.float32, "autocast": False} and loss.dtype == torch.float32


# ---------- softmax ----------

def test_softmax_is_cross_entropy_of_a_linear_layer():
    module = make_loss("softmax")
    x, label = make_input("softmax")
    x.requires_grad_(True)
    loss, acc = module(x, label)
    W, bias, xs, y = f64(module.fc.weight), f64(module.fc.bias), f64(x), label.numpy()
    logits = xs @ W.T + bias
    assert loss.item() == pytest.approx(np_cross_entropy(logits, y), rel=1e-5)
    assert acc == pytest.approx(np_top1(logits, y))
    # d(mean CE)/dx = (softmax - onehot) / batch, pulled back through the layer.
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), p @ W / len(y), rtol=1e-4, atol=1e-6)


# ---------- amsoftmax ----------

def test_amsoftmax_subtracts_margin_from_target_cosine_only_and_scores_those_logits():
    module = make_loss("amsoftmax", nOut=2, nClasses=2, margin=0.3, scale=15)
    with torch.no_grad():
        module.W.copy_(torch.eye(2) * 4.0)  # column norms are irrelevant
    x = torch.tensor([[3.0, 4.0]])  # cosines 0.6 and 0.8
    loss, acc = module(x, torch.tensor([1]))
    # logits 15 * [0.6, 0.8 - 0.3] = [9, 7.5]: the margin makes the target lose.
    assert loss.item() == pytest.approx(math.log(1 + math.exp(1.5)), rel=1e-5)
    assert acc == 0.0


def test_amsoftmax_value_metric_and_gradient_match_reference():
    module = make_loss("amsoftmax", margin=0.2, scale=30)
    x, label = make_input("amsoftmax")
    x.requires_grad_(True)
    loss, acc = module(x, label)
    loss.backward()
    xs, W, y = f64(x), f64(module.W), label.numpy()
    ref = lambda: np_cross_entropy(ref_amsoftmax_logits(xs, W, y, 0.2, 30), y)
    assert loss.item() == pytest.approx(ref(), rel=1e-5)
    assert acc == pytest.approx(np_top1(ref_amsoftmax_logits(xs, W, y, 0.2, 30), y))
    assert_grad_matches(x, numeric_grad(ref, xs))
    assert_grad_matches(module.W, numeric_grad(ref, W))


# ---------- aamsoftmax ----------

@pytest.mark.parametrize("x,target_logit", [
    ([[1.0, 1.0]], math.cos(math.pi / 4 + 0.3)),               # theta + m stays below pi
    ([[-1.0, 0.0]], -1.0 - math.sin(math.pi - 0.3) * 0.3),      # theta > pi - m: linear fallback
])
def test_aamsoftmax_adds_angular_margin_with_non_easy_fallback(x, target_logit):
    module = make_loss("aamsoftmax", nOut=2, nClasses=2, margin=0.3, scale=15)
    with torch.no_grad():
        module.weight.copy_(torch.eye(2))
    x = torch.tensor(x)
    loss, _ = module(x, torch.tensor([0]))
    other_logit = F.normalize(x)[0, 1].item()
    expected = -15 * target_logit + math.log(math.exp(15 * target_logit) + math.exp(15 * other_logit))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_aamsoftmax_value_metric_and_gradient_match_reference():
    module = make_loss("aamsoftmax", margin=0.2, scale=30)
    x, label = make_input("aamsoftmax")
    x.requires_grad_(True)
    loss, acc = module(x, label)
    loss.backward()
    xs, weight, y = f64(x), f64(module.weight), label.numpy()
    ref = lambda: np_cross_entropy(ref_aamsoftmax_logits(xs, weight, y, 0.2, 30), y)
    assert loss.item() == pytest.approx(ref(), rel=1e-5)
    assert acc == pytest.approx(np_top1(ref_aamsoftmax_logits(xs, weight, y, 0.2, 30), y))
    assert_grad_matches(x, numeric_grad(ref, xs))
    assert_grad_matches(module.weight, numeric_grad(ref, weight))


# ---------- ge2e ----------

def test_ge2e_value_metric_and_gradient_match_reference():
    module = make_loss("ge2e")
    x, _ = make_input("ge2e", n_per_speaker=3)
    # Positive coordinates keep every cosine above the 1e-6 clamp, so no row has tied logits.
    x = F.normalize(x.abs(), dim=-1).requires_grad_(True)
    loss, acc = module(x, None)
    loss.backward()
    xs, wb = f64(x), np.array([10.0, -5.0])
    ref = lambda: np_cross_entropy(*ref_ge2e_logits(xs, *wb))
    assert loss.item() == pytest.approx(ref(), rel=1e-5)
    assert acc == pytest.approx(np_top1(*ref_ge2e_logits(xs, *wb)))
    assert_grad_matches(x, numeric_grad(ref, xs))
    np.testing.assert_allclose([module.w.grad.item(), module.b.grad.item()], numeric_grad(ref, wb), rtol=1e-3, atol=1e-6)


def test_ge2e_own_centroid_excludes_the_utterance_and_similarities_are_clamped():
    module = make_loss("ge2e")
    # Speaker 0: utterances e1, e1, e2. Utterance 2's own centroid without itself is e1
    # (cos 0), clamped to 1e-6; with itself it would be cos((e1+e1+e2)/3, e2) > 0.
    e1, e2 = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    x = torch.tensor([[e1, e1, e2], [[0.0, 0.0, 1.0]] * 3])
    logits, _ = ref_ge2e_logits(x.double().numpy(), 10.0, -5.0)
    assert logits[2, 0] == pytest.approx(1e-6 * 10 - 5)
    assert logits[3, 0] == pytest.approx(1e-6 * 10 - 5)  # speaker 1 vs centroid 0: cos 0, clamped
    loss, _ = module(x, None)
    assert loss.item() == pytest.approx(np_cross_entropy(logits, np.repeat([0, 1], 3)), rel=1e-5)


def test_ge2e_and_angleproto_do_not_clamp_a_negative_scale():
    for name, ref in [("ge2e", lambda xs: ref_ge2e_logits(xs, -2.0, 1.0)),
                      ("angleproto", lambda xs: (ref_angleproto_logits(xs, -2.0, 1.0), np.arange(4)))]:
        module = make_loss(name)
        with torch.no_grad():
            module.w.fill_(-2.0)
            module.b.fill_(1.0)
        x, _ = make_input(name)
        loss, _ = module(x, None)
        assert loss.item() == pytest.approx(np_cross_entropy(*ref(f64(x))), rel=1e-5), name


# ---------- proto ----------

def test_proto_queries_first_utterance_against_mean_of_the_rest():
    x = torch.tensor([[[0.0], [0.5], [1.5]], [[2.0], [2.0], [2.0]]])
    loss, acc = make_loss("proto")(x, None)
    # prototypes 1 and 2, queries 0 and 2: logits [[-1, -4], [-1, 0]]
    expected = np.mean([math.log(1 + math.exp(-3)), math.log(1 + math.exp(-1))])
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    assert acc == 100.0


def test_proto_value_metric_and_gradient_match_reference():
    x, _ = make_input("proto", n_per_speaker=3)
    x.requires_grad_(True)
    loss, acc = make_loss("proto")(x, None)
    loss.backward()
    xs = f64(x)
    ref = lambda: np_cross_entropy(ref_proto_logits(xs), np.arange(4))
    assert loss.item() == pytest.approx(ref(), rel=1e-5)
    assert acc == pytest.approx(np_top1(ref_proto_logits(xs), np.arange(4)))
    assert_grad_matches(x, numeric_grad(ref, xs))


# ---------- angleproto ----------

def test_angleproto_value_metric_and_gradient_match_reference():
    module = make_loss("angleproto")
    x, _ = make_input("angleproto", n_per_speaker=3)
    x = F.normalize(x, dim=-1).requires_grad_(True)
    loss, acc = module(x, None)
    loss.backward()
    xs, wb = f64(x), np.array([10.0, -5.0])
    ref = lambda: np_cross_entropy(ref_angleproto_logits(xs, *wb), np.arange(4))
    assert loss.item() == pytest.approx(ref(), rel=1e-5)
    assert acc == pytest.approx(np_top1(ref_angleproto_logits(xs, *wb), np.arange(4)))
    assert_grad_matches(x, numeric_grad(ref, xs))
    np.testing.assert_allclose([module.w.grad.item(), module.b.grad.item()], numeric_grad(ref, wb), rtol=1e-3, atol=1e-6)


# ---------- triplet / contrastive ----------

SEPARABLE = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])  # positives coincide
INVERTED = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])   # negatives coincide


@pytest.mark.parametrize("name,x,loss_value,eer", [
    ("triplet", SEPARABLE, 0.0, 0.0),          # relu(0 - 2 + 0.1)
    ("triplet", INVERTED, 2.1, 100.0),         # relu(2 - 0 + 0.1)
    ("contrastive", SEPARABLE, 0.0, 0.0),      # mean(0, 0, relu(0.1 - sqrt 2)^2, ...)
    ("contrastive", INVERTED, 1.005, 100.0),   # mean(2, 2, 0.1^2, 0.1^2)
])
def test_pair_losses_on_hand_checked_pairs(name, x, loss_value, eer):
    loss, metric = make_loss(name, margin=0.1)(x * 3.0, None)  # loss re-normalises its input
    assert loss.item() == pytest.approx(loss_value, abs=1e-5)
    assert metric == pytest.approx(eer)


@pytest.mark.parametrize("name,ref_loss", [("triplet", ref_triplet_loss), ("contrastive", ref_contrastive_loss)])
def test_pair_losses_value_metric_and_gradient_match_reference(name, ref_loss):
    x, _ = make_input(name, seed=3)
    x = torch.cat([x, torch.randn(4, 2, N_OUT)]) * 0.5
    x.requires_grad_(True)
    loss, eer = make_loss(name, margin=1.5, hard_rank=0, hard_prob=1.0)(x, None)  # hardest negative
    loss.backward()
    xs = f64(x)
    negidx = ref_hardest_negatives(xs)
    ref = lambda: ref_loss(xs, negidx, 1.5)
    assert loss.item() == pytest.approx(ref(), rel=1e-5)
    pos, neg = ref_pair_distances(xs, negidx)
    labels = np.array([1] * len(pos) + [0] * len(neg))
    assert eer == pytest.approx(tuneThresholdfromScore(-np.concatenate([pos, neg]), labels, [])[1])
    assert_grad_matches(x, numeric_grad(ref, xs))


@pytest.mark.parametrize("name", ["triplet", "contrastive"])
def test_pair_losses_are_deterministic_under_seeded_random(name):
    x = torch.randn(8, 2, N_OUT, generator=torch.Generator().manual_seed(1))
    module = make_loss(name, hard_rank=2, hard_prob=0.5)
    random.seed(7)
    first = module(x, None)
    random.seed(7)
    second = module(x, None)
    assert first[0].item() == second[0].item() and first[1] == second[1]


@pytest.mark.parametrize("name", ["triplet", "contrastive"])
def test_pair_losses_require_exactly_two_utterances_per_speaker(name):
    with pytest.raises(AssertionError):
        make_loss(name)(torch.randn(4, 3, N_OUT), None)


# ---------- negative mining ----------

# Row i: similarity of anchor i to every positive; the diagonal is its own positive.
SIM = torch.tensor([[0.0, -0.1, -0.5, -0.9],
                    [-0.2, 0.0, -0.3, -0.8],
                    [-0.7, -0.6, 0.0, -0.05],
                    [-0.4, -0.9, -0.3, -1.0]])


def picks(n_trials, **kwargs):
    """Set of indices chosen for each row over many seeds."""
    chosen = [set() for _ in range(len(SIM))]
    for seed in range(n_trials):
        random.seed(seed)
        for row, neg in enumerate(mine_negatives(SIM, **kwargs)):
            chosen[row].add(int(neg))
    return chosen


def test_rank_mining_with_hard_prob_1_and_rank_0_picks_the_hardest_other_column():
    random.seed(0)
    assert mine_negatives(SIM, margin=0.1, hard_rank=0, hard_prob=1.0) == [1, 0, 3, 2]


def test_rank_mining_with_hard_prob_1_picks_among_the_hard_rank_plus_1_hardest():
    assert picks(200, margin=0.1, hard_rank=1, hard_prob=1.0) == [{1, 2}, {0, 2}, {3, 1}, {2, 0}]


def test_rank_mining_never_picks_the_positive_itself():
    assert picks(200, margin=0.1, hard_rank=0, hard_prob=0.0) == [{1, 2, 3}, {0, 2, 3}, {0, 1, 3}, {0, 1, 2}]


def test_semi_hard_mining_picks_within_margin_below_the_positive_else_anything():
    # Row 3's positive is its least similar column, so no candidate lies in the band
    # and the original falls back to any column, itself included.
    assert picks(200, margin=0.35, hard_rank=-1, hard_prob=0.0) == [{1}, {0, 2}, {3}, {0, 1, 2, 3}]


def replay_original_mining(sim, margin, hard_rank, hard_prob):
    """The original's sequence of `random` calls, written as a plain loop."""
    negidx = []
    for i, row in enumerate(sim.tolist()):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        if hard_rank < 0:
            band = [j for j in order if row[i] - margin < row[j] < row[i]]
            negidx.append(random.choice(band) if band else random.choice(order))
        else:
            others = [j for j in order if j != i]
            if random.random() < hard_prob:
                negidx.append(others[random.randint(0, hard_rank)])
            else:
                negidx.append(random.choice(others))
    return negidx


@pytest.mark.parametrize("hard_rank,hard_prob", [(1, 0.5), (2, 0.3), (-1, 0.0)])
def test_mining_consumes_random_in_the_original_order(hard_rank, hard_prob):
    for seed in range(20):
        random.seed(seed)
        expected = replay_original_mining(SIM, 0.35, hard_rank, hard_prob)
        random.seed(seed)
        assert mine_negatives(SIM, margin=0.35, hard_rank=hard_rank, hard_prob=hard_prob) == expected


def test_rank_mining_clamps_hard_rank_to_the_available_negatives():
    # The original raised IndexError here; every other column is now a candidate.
    random.seed(0)
    chosen = {tuple(mine_negatives(SIM, margin=0.1, hard_rank=50, hard_prob=1.0)) for _ in range(200)}
    assert all(pick != row for picks in chosen for row, pick in enumerate(picks))
    assert {picks[0] for picks in chosen} == {1, 2, 3}
