"""The inference path of every embedding (voxtrainer.inference.embedder, .embedding): the fast graph
gives the eager numbers for every model and input length, identical crops are embedded once with the
same numbers, --eval_precision bf16 is refused where not native and says so where it runs, every
failure of the optimisation falls back to eager, and every pass over files embeds with the weights
of that moment. Speed is measured by benchmarks, not here."""

import copy
import os

import numpy
import pytest
import torch

import trainSpeakerNet
from conftest import ORIGINAL, assert_one_error_line
from SpeakerNet import SpeakerNet
from voxtrainer.inference import embedder as inference
from voxtrainer.inference.embedder import embedder_for
from voxtrainer.inference.embedding import embed_crops
from voxtrainer.reading.audio import crop_samples, crop_waveform, loadWAV, read_audio
from voxtrainer.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = ["ResNetSE34L", "VGGVox", "ResNetSE34"]
SHORT = os.path.join(ORIGINAL, "wav", "id10271", "OiA3LdNaQyj", "00001.wav")  # 1.2 s: shorter than a 3 s crop
LONG = os.path.join(ORIGINAL, "wav", "id10271", "VFswP8_uCfU", "00001.wav")   # 7 s


def audio_files():
    return sorted(os.path.join(root, name) for root, _, names in os.walk(os.path.join(ORIGINAL, "wav"))
                  for name in names if name.endswith(".wav"))


def speech(samples, offset=0):
    """Real speech of the fixture, `samples` long."""
    audio = numpy.concatenate([read_audio(path) for path in audio_files()[:12]])
    return torch.from_numpy(numpy.ascontiguousarray(audio[offset:offset + samples]))


def make_net(model, trainfunc="angleproto"):
    """Random weights with BatchNorm statistics far from the identity, so that folding them into
    the convolutions is exercised; the CPU layout the trainer uses."""
    torch.manual_seed(0)
    net = SpeakerNet(model=model, trainfunc=trainfunc, nOut=512, encoder_type="SAP", nClasses=8)
    generator = torch.Generator().manual_seed(1)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return net.to(memory_format=torch.channels_last).eval()


def eager(net, crops):
    return embed_crops(net, crops, embedder_for(net, fast=False))


def fast(net, crops):
    """The embeddings by the fast graph, which must have been made."""
    embedder = embedder_for(net, fast=True)
    assert embedder.graph is not None
    return embed_crops(net, crops, embedder)


def relative(ours, reference):
    return inference.relative_l2(ours, reference)


@pytest.mark.parametrize("model", MODELS)
def test_the_fast_graph_gives_the_eager_embeddings_at_fixed_and_whole_file_lengths(model):
    net = make_net(model)
    fixed = torch.stack([speech(crop_samples(300), offset) for offset in (0, 30000, 61000)])
    assert relative(fast(net, fixed), eager(net, fixed)) < inference.TOLERANCE
    for samples in (40000, 70001):  # whole files of lengths the graph was not traced with
        whole = speech(samples, 5000)[None]
        assert relative(fast(net, whole), eager(net, whole)) < inference.TOLERANCE


def test_embed_files_equals_the_plain_per_file_eager_embeddings():
    """The whole pass (loader processes, identical crops once, crops of several files per forward,
    the fast graph) against the 2020 way: each file's 10 crops through eager __S__, normalised."""
    net = make_net("ResNetSE34L")
    paths = audio_files()[::4]
    for eval_frames in (300, 0):
        ours = net.embed_files(paths, eval_frames, num_workers=1, progress=False)
        with torch.no_grad():
            for path, embedding in zip(paths, ours):
                crops = loadWAV(path, eval_frames, evalmode=True, num_eval=10)
                plain = torch.nn.functional.normalize(net.__S__(crops), p=2, dim=1)
                assert embedding.shape == plain.shape
                assert relative(embedding, plain) < inference.TOLERANCE


def test_a_file_no_longer_than_a_crop_is_one_crop_repeated():
    max_audio = crop_samples(300)
    for samples, expected in ((max_audio - 2, [0] * 10), (max_audio, [0] * 10), (max_audio - 1, [0] * 9 + [1])):
        crops = eval_crops_of(numpy.arange(samples, dtype=numpy.float32) + 1, 300)
        unique, index = inference.unique_crops(crops)
        assert index.tolist() == expected and torch.equal(unique[index], crops)
    crops = loadWAV(LONG, 300, evalmode=True, num_eval=10)  # a long file: all distinct
    unique, index = inference.unique_crops(crops)
    assert unique.shape[0] == 10 and index.tolist() == list(range(10))


def eval_crops_of(waveform, max_frames):
    return crop_waveform(waveform, max_frames, evalmode=True, num_eval=10)


@pytest.mark.parametrize("model", ["ResNetSE34L", "VGGVox"])
def test_identical_crops_embedded_once_are_bit_for_bit_those_embedded_each(model):
    """A forward pass's numbers depend (by rounding) on how many crops share it, so the deduplicated
    and the plain path are compared one crop per pass: then they agree bit for bit."""
    net = make_net(model)
    paths = [SHORT, LONG]
    deduplicated = net.embed_files(paths, 300, crops_per_batch=1, progress=False)
    for path, embeddings in zip(paths, deduplicated):
        crops = loadWAV(path, 300, evalmode=True, num_eval=10)
        each = torch.cat([fast(net, crop[None]) for crop in crops])  # the graph embed_files uses
        assert torch.equal(embeddings, each)
    assert all(torch.equal(deduplicated[0][0], row) for row in deduplicated[0])  # the short file: 1 crop
    # the premise: identical crops sharing a pass get identical embeddings; the deduplicated pass (one
    # crop) differs from that 10-crop pass by batch-size rounding only
    crops = loadWAV(SHORT, 300, evalmode=True, num_eval=10)
    with torch.no_grad():
        plain = torch.nn.functional.normalize(net.__S__(crops), p=2, dim=1)
    assert all(torch.equal(plain[0], row) for row in plain)
    assert relative(net.embed_crops(crops), plain) < inference.TOLERANCE


def test_bf16_is_refused_with_one_line_where_it_is_not_native(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(InputError) as error:
        inference.check_precision("bf16", "cpu")
    assert "--eval_precision bf16" in error.value.line and "\n" not in str(error.value)
    status = trainSpeakerNet.main(["--eval", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--device", "cpu",
                                   "--save_path", str(tmp_path), "--eval_precision", "bf16"])
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, "--eval_precision bf16", "fp32")
    inference.check_precision("fp32", "cpu")  # fp32 is never refused


@pytest.mark.skipif(not inference.bf16_native("cpu"), reason="this CPU has no native bf16")
def test_bf16_where_native_says_so_and_changes_embeddings_by_rounding_only(capsys):
    net = make_net("ResNetSE34L")
    crops = torch.stack([speech(crop_samples(200), offset) for offset in (0, 40000)])
    fp32 = net.embed_crops(crops)
    net.set_eval_precision("bf16")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "bf16" in lines[0] and "scores" in lines[0]
    eager_bf16 = net.embed_crops(crops)
    graph_bf16 = fast(net, crops)
    for bf16 in (eager_bf16, graph_bf16):
        assert bf16.dtype == torch.float32 and 1e-4 < relative(bf16, fp32) < 0.05
    net.set_eval_precision("fp32")
    assert capsys.readouterr().out == ""  # fp32 says nothing
    assert relative(net.embed_crops(crops), fp32) < inference.TOLERANCE


@pytest.mark.parametrize("breakage", ["trace raises", "a torch without the freezing passes"])
def test_a_graph_that_cannot_be_made_leaves_eager_with_one_warning(monkeypatch, capsys, breakage):
    net = make_net("ResNetSE34L")
    crops = speech(40000)[None]
    expected = eager(net, crops)
    if breakage == "trace raises":
        def broken(*args, **kwargs):
            raise RuntimeError("trace exploded")
        monkeypatch.setattr(torch.jit, "trace", broken)
        reason = "trace exploded"
    else:
        monkeypatch.delattr(torch._C, "_jit_pass_optimize_frozen_graph")
        reason = "_jit_pass_optimize_frozen_graph"
    inference.WARNED.clear()
    for _ in range(3):  # each pass over files tries to make the graph; the warning is said once
        assert torch.equal(embed_crops(net, crops, embedder_for(net, fast=True)), expected)
        net.embed_files([SHORT], 300, progress=False)
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and reason in warnings[0] and "eager" in warnings[0]


def test_a_graph_that_fails_on_an_input_falls_back_to_eager(capsys):
    net = make_net("ResNetSE34L")
    crops = speech(40000)[None]
    embedder = embedder_for(net, fast=True)

    def failing(waveform):
        raise RuntimeError("graph exploded")
    embedder.graph = failing
    assert torch.equal(embed_crops(net, crops, embedder), eager(net, crops))
    assert embedder.graph is None and "graph exploded" in capsys.readouterr().err
    # an input that eager cannot embed either is the caller's error, not the optimisation's
    embedder.graph = failing
    with pytest.raises(RuntimeError):
        embed_crops(net, torch.zeros(1, 10), embedder)
    assert embedder.graph is failing


def test_every_pass_over_files_embeds_with_the_weights_of_that_moment():
    net = make_net("VGGVox")
    before = net.embed_files([SHORT], 0, progress=False)
    with torch.no_grad():  # as an optimizer step or loadParameters does
        net.__S__.fc.weight.mul_(2)
    changed = net.embed_files([SHORT], 0, progress=False)
    crops = torch.from_numpy(read_audio(SHORT))[None]
    assert relative(changed[0], eager(net, crops)) < inference.TOLERANCE
    assert relative(changed[0], before[0]) > 1e-3
    net.__S__.fc.weight.data.mul_(0.5)  # a write that no version counter sees
    assert relative(net.embed_files([SHORT], 0, progress=False)[0], before[0]) < inference.TOLERANCE


def test_nothing_of_inference_is_kept_on_the_network():
    net = make_net("ResNetSE34L")
    attributes, keys, modules = set(vars(net)), set(net.state_dict()), len(list(net.modules()))
    net.embed_files([SHORT], 300, progress=False)
    assert set(vars(net)) == attributes and set(net.state_dict()) == keys and len(list(net.modules())) == modules
    copied = copy.deepcopy(net)
    crops = speech(20000)[None]
    assert relative(copied.embed_crops(crops), net.embed_crops(crops)) < inference.TOLERANCE


def test_a_net_in_training_mode_is_run_eagerly():
    net = make_net("ResNetSE34L").train()
    crops = torch.stack([speech(20000), speech(20000, 7000)])
    assert embedder_for(net, fast=True).graph is None
    out = net.embed_crops(crops)
    with torch.no_grad():
        assert torch.equal(out, torch.nn.functional.normalize(net.__S__(crops), p=2, dim=1))


def test_loader_processes_on_the_cpu_one_for_crops_none_for_whole_files():
    assert inference.loader_processes("cpu", 0, 5) == 0
    assert inference.loader_processes("cpu", 300, 5) == 1 and inference.loader_processes("cpu", 300, 0) == 0
    assert inference.loader_processes("cuda", 0, 5) == 5
