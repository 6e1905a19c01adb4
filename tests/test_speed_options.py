"""The speed options (voxtrainer/precision.py, --compile_mode, the divergence watch): what each one
means on each device, that the CPU says in one line when one does not apply, and that the watch
that spares CUDA a host wait per step still stops a diverged run before a checkpoint is written."""

import pytest
import torch

import trainSpeakerNet
from conftest import training_flags
from voxtrainer.training.divergence import DivergenceWatch, TrainingDiverged, watch_for
from voxtrainer.errors import InputError
from voxtrainer.precision import (cudnn_benchmark_for, fused_optimizer, memory_format_for, precision_named,
                                  resolve_precision)
from voxtrainer.runtime import preferred_memory_format

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("requested, mixedprec, device, expected", [
    (None, False, "cpu", "fp32"), (None, False, "cuda", "fp32"),
    (None, True, "cuda", "fp16"), (None, True, "cpu", "bf16"),  # the seed's --mixedprec keeps its meaning
    ("fp16", True, "cuda", "fp16"), ("bf16", True, "cpu", "bf16"),
    ("tf32", False, "cuda", "tf32"), ("bf16", False, "cuda", "bf16")])
def test_precision_follows_the_flag_and_mixedprec_keeps_the_seeds_meaning(requested, mixedprec, device, expected):
    precision, note = resolve_precision(requested, mixedprec, device)
    assert precision.name == expected and note is None


def test_what_each_precision_computes():
    assert precision_named("fp32") == ("fp32", None, False, False)  # fp32 means fp32: TF32 off on CUDA
    assert precision_named("tf32").tf32 and not precision_named("tf32").autocast
    assert precision_named("bf16").autocast_dtype == torch.bfloat16 and not precision_named("bf16").loss_scaling
    assert precision_named("fp16").autocast_dtype == torch.float16 and precision_named("fp16").loss_scaling
    assert precision_named("fp32").autocast_dtype is False


def test_tf32_on_the_cpu_is_fp32_with_one_line_saying_so():
    precision, note = resolve_precision("tf32", False, "cpu")
    assert precision.name == "fp32" and "does not apply on the CPU" in note and "\n" not in note


@pytest.mark.parametrize("requested, mixedprec, device, needle", [
    ("fp16", False, "cpu", "CUDA mode"), ("fp32", True, "cuda", "--mixedprec means --precision fp16"),
    ("bf16", True, "cuda", "give --precision bf16 alone")])
def test_combinations_that_cannot_run_are_one_error_line(requested, mixedprec, device, needle):
    with pytest.raises(InputError, match=needle):
        resolve_precision(requested, mixedprec, device)


def test_the_trainer_refuses_fp16_on_the_cpu_in_one_line(demo, tmp_path, capsys):
    status = trainSpeakerNet.main(training_flags(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc",
                                                 "angleproto", "--precision", "fp16", "--device", "cpu"))
    assert status == 2
    from conftest import assert_one_error_line
    assert_one_error_line(capsys.readouterr().err, "--precision fp16", "--precision bf16")


def test_layout_is_channels_last_on_the_cpu_and_the_model_files_measured_choice_on_cuda():
    assert memory_format_for("ECAPA_TDNN", "cpu") == torch.channels_last
    for model in ("ResNetSE34L", "VGGVox", "ResNet34"):
        assert memory_format_for(model, "cuda") == torch.channels_last
    assert memory_format_for("ECAPA_TDNN", "cuda") == torch.contiguous_format
    assert memory_format_for("ResNetSE34", "cuda") == torch.contiguous_format  # declares nothing
    assert memory_format_for("ResNetSE34L", "cuda", "contiguous") == torch.contiguous_format  # the flag wins
    assert memory_format_for("ECAPA_TDNN", "cpu", "contiguous") == torch.contiguous_format
    assert preferred_memory_format("cuda", "VGGVox") == torch.channels_last
    assert preferred_memory_format("cuda") == torch.contiguous_format


def test_cudnn_benchmark_is_off_unless_a_model_file_or_the_flag_turns_it_on():
    assert cudnn_benchmark_for("ECAPA_TDNN", "cuda") == (False, None)
    assert cudnn_benchmark_for("ResNetSE34L", "cuda", "on") == (True, None)
    on_cpu, note = cudnn_benchmark_for("ResNetSE34L", "cpu", "on")
    assert not on_cpu and "does not apply on the CPU" in note


def test_fused_optimizer_steps_only_on_cuda_and_never_under_fp32():
    assert not fused_optimizer(precision_named("fp32"), "cuda")
    assert fused_optimizer(precision_named("bf16"), "cuda") and fused_optimizer(precision_named("tf32"), "cuda")
    assert not fused_optimizer(precision_named("bf16"), "cpu")


def test_the_cpu_checks_every_step_and_cuda_uses_the_watch():
    assert watch_for("cpu") is None
    assert watch_for("cpu", interval=5).interval == 5


def test_the_watch_names_the_first_bad_step_at_its_next_reading_and_not_before():
    watch = DivergenceWatch(interval=4)
    for loss in (1.0, 0.9, float("nan")):
        watch.observe(torch.tensor(loss))  # step 3 is bad, but no reading yet: the host never waited
    with pytest.raises(TrainingDiverged) as raised:
        watch.observe(torch.tensor(float("inf")))  # the 4th step reads
    assert raised.value.step == 3


def test_the_watch_reads_what_is_left_at_the_end_of_the_epoch():
    watch = DivergenceWatch(interval=50)
    watch.observe(torch.tensor(2.0))
    watch.check()  # finite: nothing raised
    watch.observe(torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged) as raised:
        watch.check()
    assert raised.value.step == 2


def test_a_diverged_run_under_the_watch_stops_before_its_checkpoint_and_names_the_step(demo, tmp_path, monkeypatch,
                                                                                       capsys):
    """The CUDA path on the CPU: a watch reading every 50 steps; the loss is made NaN at step 2 of
    epoch 1. The epoch ends, the watch reads at its end, no checkpoint is written."""
    import voxtrainer.training.loop as training
    original_run_epoch = training.run_epoch
    monkeypatch.setattr(training, "run_epoch", lambda *args, **kwargs: original_run_epoch(
        *args, **dict(kwargs, divergence_interval=50)))
    from voxtrainer.training import step as step_module
    real_step, calls = step_module.train_step, []

    def poisoned(model, data, label, *rest):
        calls.append(1)
        return real_step(model, data * float("nan") if len(calls) == 2 else data, label, *rest)
    monkeypatch.setattr(training, "train_step", poisoned)
    status = trainSpeakerNet.main(training_flags(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc",
                                                 "angleproto", "--device", "cpu"))
    assert status == 2
    from conftest import assert_one_error_line
    assert_one_error_line(capsys.readouterr().err, "loss became non-finite at epoch 1, step 2")
    assert not list((tmp_path / "model").glob("*.model"))


def test_fp16_embeddings_are_a_cuda_mode_refused_on_the_cpu_in_one_line():
    from voxtrainer.inference.embedder import check_precision
    with pytest.raises(InputError, match="--eval_precision fp16 is a CUDA mode") as raised:
        check_precision("fp16", "cpu")
    assert "\n" not in str(raised.value)


def test_compile_mode_with_cuda_graphs_says_in_one_line_that_the_cpu_has_none():
    from voxtrainer.precision import compile_mode_note
    assert "CUDA graphs do not apply on the CPU" in compile_mode_note("reduce-overhead", "cpu")
    assert compile_mode_note("default", "cpu") is None and compile_mode_note("reduce-overhead", "cuda") is None
