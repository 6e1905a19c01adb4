"""The prepared GPU check runs end to end (here on the CPU, --quick) and reports every figure the
issue asks for: a line per network and variant (measured, or skipped when its section's budget is
spent, or CUDA-only), the epoch per network and precision in the promised form, start-up, both
evaluation lists, and the summary."""

import json

import pytest

import tools.gpu_check
from tools.gpu_check_train import EPOCH_PRECISIONS, VARIANTS, present_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lines():
    import io
    from contextlib import redirect_stdout
    captured = io.StringIO()
    with redirect_stdout(captured):
        tools.gpu_check.main(["--device", "cpu", "--quick"])
    return [json.loads(line) for line in captured.getvalue().splitlines()]


def test_every_present_network_is_checked_including_the_wespeaker_ones():
    models = present_models()
    assert models[:2] == ("ResNetSE34L", "VGGVox") and {"ResNet34", "ECAPA_TDNN"} <= set(models)


def test_every_network_and_cpu_variant_has_a_line(lines):
    steps = {(line["model"], line["variant"]): line for line in lines if line["measurement"] == "train_step"}
    cpu_variants = {variant.name for variant in VARIANTS if variant.precision not in ("fp16", "tf32")}
    assert set(steps) == {(model, variant) for model in present_models() for variant in cpu_variants}
    measured = [line for line in steps.values() if "skipped" not in line]
    assert measured and all(line.get("utt_per_s", 0) > 0 or (line["compile_mode"] and line["error"])
                            for line in measured)
    assert steps["ResNetSE34L", "fp32"].get("utt_per_s", 0) > 0  # the first measured never runs out of budget


def test_the_epoch_fed_by_the_loader_has_the_promised_form(lines):
    epochs = [line for line in lines if line["measurement"] == "epoch"]
    assert {line["precision"] for line in epochs} == set(EPOCH_PRECISIONS)
    for line in epochs:
        assert {"model", "precision", "utt_per_s", "peak_gpu_mb"} <= set(line) and line["utt_per_s"] > 0


def test_start_up_and_both_evaluation_lists_are_timed(lines):
    startup = next(line for line in lines if line["measurement"] == "startup")
    assert startup["to_first_epoch_line_s"] > 0
    evaluations = {line["list"]: line for line in lines if line["measurement"] == "evaluation"}
    assert set(evaluations) == {"VoxCeleb1-O", "VoxCeleb1-E"}
    for line in evaluations.values():
        assert line["seconds"] > 0 and line["extrapolated"] == (line["timed_files"] < line["files"])


def test_the_summary_states_the_acceptance_figures(lines):
    summary = lines[-1]
    assert summary["measurement"] == "summary" and set(summary["met"]) == set(tools.gpu_check.ACCEPTANCE)
    assert summary["fp32_epoch_utt_per_s"]["ResNetSE34L"] > 0
