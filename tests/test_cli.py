"""The command line's flags: which ones the user gave (command line or --config), and a warning
line for each given option that the chosen model, loss, optimizer or scheduler does not take,
where it would otherwise vanish without a word."""

import trainSpeakerNet
from conftest import training_flags
from voxtrainer.cli.build import named_parameters, warn_unused_options
from voxtrainer.cli.flags import explicit_flags
from voxtrainer.plugins import load_plugin


def test_explicit_flags_are_those_on_the_command_line_and_in_the_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("margin: 0.2\nencoder: ASP\n")
    given = explicit_flags(["--model", "ResNetSE34L", "--scale", "30", "--config", str(config)])
    assert {"model", "scale", "margin", "encoder_type", "config"} <= given
    assert not {"lr", "channels", "n_mels", "batch_size"} & given  # defaults are not given


def test_named_parameters_follow_a_loss_through_its_base_classes():
    assert {"margin", "scale"} <= named_parameters(load_plugin("loss", "aamsoftmax"))
    assert {"margin", "hard_rank", "hard_prob"} <= named_parameters(load_plugin("loss", "triplet"))
    assert "margin" not in named_parameters(load_plugin("loss", "angleproto"))
    assert "channels" in named_parameters(load_plugin("models", "ECAPA_TDNN"))
    assert "channels" not in named_parameters(load_plugin("models", "ResNet34"))


def test_an_option_the_chosen_plugin_does_not_take_is_named_in_one_warning(capsys):
    warn_unused_options({"channels", "margin", "lr_decay"}, {
        "models": "ResNet34", "loss": "angleproto", "optimizer": "adam", "scheduler": "warmup_exp"})
    lines = capsys.readouterr().err.strip().splitlines()
    assert sorted(lines) == sorted([
        "WARNING: --channels has no effect: --model ResNet34 does not take it",
        "WARNING: --margin has no effect: --trainfunc angleproto does not take it",
        "WARNING: --lr_decay has no effect: --scheduler warmup_exp does not take it"])


def test_an_option_that_is_refused_where_it_does_not_apply_gets_no_warning_first(demo, tmp_path, capsys):
    flags = training_flags(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2",
                           "--nesterov")
    assert trainSpeakerNet.main(flags) == 2
    assert capsys.readouterr().err.strip() == "error: --nesterov: --optimizer adam does not take it"


def test_options_the_chosen_plugins_take_and_defaults_are_silent(capsys):
    warn_unused_options({"channels", "margin", "scale", "weight_decay"}, {
        "models": "ECAPA_TDNN", "loss": "aamsoftmax", "optimizer": "sgd", "scheduler": "steplr"})
    warn_unused_options(set(), {"models": "ResNet34", "loss": "angleproto", "optimizer": "adam",
                                "scheduler": "steplr"})
    assert capsys.readouterr().err == ""


def test_training_with_an_option_the_model_ignores_warns_once_and_trains(demo, tmp_path, capsys):
    flags = training_flags(demo, tmp_path, "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nSpeakers", "2",
                           "--channels", "1024")
    assert trainSpeakerNet.main(flags) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("WARNING: --channels")]
    assert warnings == ["WARNING: --channels has no effect: --model ResNetSE34L does not take it"]
