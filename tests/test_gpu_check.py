"""The prepared GPU check runs end to end (here on the CPU, --quick) and reports every figure."""

import json

import pytest

import tools.gpu_check

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_gpu_check_reports_every_model_variant_and_the_busy_fraction(capsys):
    tools.gpu_check.main(["--device", "cpu", "--quick"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    steps = {(line["model"], line["variant"]): line for line in lines if line["measurement"] == "train_step"}
    assert set(steps) == {(model, variant) for model in tools.gpu_check.MODELS for variant in tools.gpu_check.VARIANTS}
    for (model, variant), line in steps.items():
        # torch.compile may fail on a machine (then the line says why); every other variant must run
        assert line.get("utt_per_s", 0) > 0 or (variant == "compiled" and line["error"])
    assert {line["model"] for line in lines if line["measurement"] == "embedding"} == set(tools.gpu_check.MODELS)
    epoch = next(line for line in lines if line["measurement"] == "epoch")
    assert 0 < epoch["gpu_busy"] <= 1 and epoch["utt_per_s"] > 0
    assert lines[-1]["measurement"] == "summary" and isinstance(lines[-1]["met"], bool)
