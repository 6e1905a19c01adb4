"""The shortest audio on every path that reads it. A whole-file evaluation (--eval_frames 0) of a file
shorter than the network can take, on any path (--eval, --calibrate, cohorts, --extract, --verify,
--verify_list, the validation of a training run), is one line naming the file (exit 2); so is a
0-sample file anywhere. Fixed-length crops (training, --eval_frames > 0) pad short files as the
original did; crops too short for the network are a flag error."""

import os
import shutil

import numpy
import pytest
import soundfile
import torch

import trainSpeakerNet
from conftest import assert_one_error_line
from SpeakerNet import SpeakerNet
from voxtrainer.errors import InputError
from voxtrainer.reading.input_length import embeds, frames_for, shortest_input

LENGTHS = (0, 1, 100, 399, 400)
MODELS = ("ResNetSE34L", "ResNetSE34V2", "VGGVox", "ResNetSE34", "ResNet34", "ECAPA_TDNN")
SHORT = "short/clip/short.wav"


def write_samples(path, num_samples, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    samples = numpy.random.RandomState(seed).randint(-3000, 3000, num_samples).astype(numpy.int16)
    soundfile.write(path, samples, 16000, subtype="PCM_16")


def one_line_error(capsys, status, *needles):
    assert status == 2
    assert_one_error_line(capsys.readouterr().err, *needles)


# -- every model: the shortest input it takes -----------------------------------------------------

@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {model: SpeakerNet(model=model, nOut=32) for model in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_the_shortest_input_embeds_and_one_sample_less_does_not(nets, model):
    network = nets[model].__S__
    shortest = shortest_input(network, model)
    assert network.training  # the probe's eval mode is undone
    network.eval()
    assert embeds(network, shortest, "cpu") and not embeds(network, shortest - 1, "cpu")
    network.train()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("num_samples", LENGTHS)
def test_a_whole_file_too_short_for_the_model_is_an_error_naming_it_else_an_embedding(
        nets, model, num_samples, tmp_path):
    net = nets[model]
    path = str(tmp_path / "short.wav")
    write_samples(path, num_samples)
    if num_samples == 0 or num_samples < net.shortest_input():
        with pytest.raises(InputError, match="short.wav"):
            net.embed_files([path], eval_frames=0, progress=False)
        return
    embedding = net.embed_files([path], eval_frames=0, progress=False)
    assert embedding.shape == (1, 1, 32) and torch.isfinite(embedding).all()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("num_samples", LENGTHS[1:])
def test_fixed_length_crops_pad_short_files_as_the_original(nets, model, num_samples, tmp_path):
    net = nets[model]
    path = str(tmp_path / "short.wav")
    write_samples(path, num_samples)
    embedding = net.embed_files([path], eval_frames=frames_for(net.shortest_input()), num_eval=3, progress=False)
    assert embedding.shape == (1, 3, 32) and torch.isfinite(embedding).all()


@pytest.mark.parametrize("model", MODELS)
def test_crops_too_short_for_the_model_are_an_error_naming_the_flag(nets, model, tmp_path):
    net = nets[model]
    frames = frames_for(net.shortest_input())
    path = str(tmp_path / "long.wav")
    write_samples(path, 16000)
    if frames > 1:
        with pytest.raises(InputError, match="--eval_frames %d: .*--eval_frames %d or more" % (frames - 1, frames)):
            net.embed_files([path], eval_frames=frames - 1, progress=False)
    assert torch.isfinite(net.embed_files([path], eval_frames=frames, num_eval=2, progress=False)).all()


# -- every path that reads audio, from the command line ------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("short_audio") / "random.model")
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32).saveParameters(path)
    return path


@pytest.fixture
def short_set(demo_set, tmp_path, request):
    """The tiny demo set's test files plus SHORT, of request.param samples, in lists of every kind."""
    demo = demo_set()
    root = tmp_path / "test"
    shutil.copytree(demo.test_path, root)
    write_samples(str(root / SHORT), request.param)
    rows = [line.split() for line in open(demo.test_list) if line.strip()]
    other = rows[0][1]
    lists = {"test": tmp_path / "test.txt", "paths": tmp_path / "paths.txt", "pairs": tmp_path / "pairs.txt"}
    lists["test"].write_text("".join("%s %s %s\n" % tuple(row) for row in rows) + "0 %s %s\n" % (SHORT, other))
    lists["paths"].write_text("%s\n%s\n" % (other, SHORT))
    lists["pairs"].write_text("%s %s\n" % (SHORT, other))
    return demo, str(root), {name: str(path) for name, path in lists.items()}, other


def eval_command(checkpoint, root, test_list, save_path, *extra):
    return ["--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--eval_frames", "0",
            "--initial_model", checkpoint, "--test_list", test_list, "--test_path", root,
            "--save_path", str(save_path), "--nDataLoaderThread", "0", *extra]


def path_commands(demo, root, lists, other, checkpoint, save_path):
    """trainSpeakerNet.py flags reading SHORT whole, by every path."""
    def evaluation(*extra, test_list=lists["test"]):
        return eval_command(checkpoint, root, test_list, save_path, *extra)
    training = ["--train_list", demo.train_list, "--train_path", demo.train_path, "--max_frames", "50",
                "--batch_size", "2", "--max_epoch", "1", "--nSpeakers", "2"]
    return {
        "eval": evaluation("--eval"),
        "calibrate": evaluation("--eval", "--calibrate"),
        "cohort": evaluation("--eval", "--score_norm", "snorm", "--cohort_list", lists["paths"], "--cohort_path",
                             root, test_list=demo.test_list),
        "extract": evaluation("--extract", "--extract_list", lists["paths"], "--extract_out",
                              os.path.join(str(save_path), "out.npz")),
        "verify": evaluation("--verify", os.path.join(root, SHORT), os.path.join(root, other)),
        "verify_list": evaluation("--verify_list", lists["pairs"]),
        "validation": evaluation(*training, "--test_interval", "1"),
    }


@pytest.mark.parametrize("short_set", LENGTHS, indirect=True)
@pytest.mark.parametrize("path", ("eval", "calibrate", "cohort", "extract", "verify", "verify_list", "validation"))
def test_every_path_reading_a_whole_file_names_a_file_too_short_or_gives_a_result(
        short_set, path, checkpoint, tmp_path, capsys):
    demo, root, lists, other = short_set
    num_samples = soundfile.info(os.path.join(root, SHORT)).frames
    save_path = tmp_path / "run"
    command = path_commands(demo, root, lists, other, checkpoint, save_path)[path]
    status = trainSpeakerNet.main(command)
    if num_samples < 257:  # ResNetSE34L's mel front end: half an FFT of reflection needs 257 samples
        one_line_error(capsys, status, "short.wav")
        assert not os.path.exists(save_path / "model" / "model000000001.model")  # refused before training
    else:
        assert status == 0, capsys.readouterr().err


@pytest.mark.parametrize("num_samples", LENGTHS)
def test_training_pads_short_files_as_the_original_and_names_an_empty_one(
        demo_set, num_samples, tmp_path, capsys):
    demo = demo_set()
    train_path = tmp_path / "train"
    shutil.copytree(demo.train_path, train_path)
    write_samples(str(train_path / SHORT), num_samples)
    rows = [line.split() for line in open(demo.train_list) if line.strip()]
    train_list = tmp_path / "train.txt"
    train_list.write_text("".join("%s %s\n" % tuple(row) for row in rows) + "%s %s\n" % (rows[0][0], SHORT))
    status = trainSpeakerNet.main([
        "--model", "ResNetSE34L", "--trainfunc", "softmax", "--nClasses", "4", "--nOut", "32", "--max_frames", "50",
        "--eval_frames", "50", "--batch_size", "2", "--max_epoch", "1", "--test_interval", "1",
        "--nDataLoaderThread", "0", "--train_list", str(train_list), "--train_path", str(train_path),
        "--test_list", demo.test_list, "--test_path", demo.test_path, "--save_path", str(tmp_path / "run")])
    if num_samples == 0:
        one_line_error(capsys, status, "short.wav", "no audio samples")
    else:
        assert status == 0, capsys.readouterr().err


def test_a_training_crop_too_short_for_the_model_names_max_frames(demo_set, tmp_path, capsys):
    demo = demo_set()
    status = trainSpeakerNet.main([
        "--model", "VGGVox", "--trainfunc", "softmax", "--nClasses", "4", "--nOut", "32", "--max_frames", "10",
        "--eval_frames", "100", "--batch_size", "2", "--max_epoch", "1", "--nDataLoaderThread", "0",
        "--train_list", demo.train_list, "--train_path", demo.train_path, "--test_list", demo.test_list,
        "--test_path", demo.test_path, "--save_path", str(tmp_path / "run")])
    one_line_error(capsys, status, "--max_frames 10", "VGGVox")
