"""The 2021 trainer (voxceleb_trainer 71c4c36): ResNetSE34V2, ASP pooling, --n_mels/--log_input,
the softmaxproto loss and the 2021 audio protocol, held against values its own code computed
(tests/data/original2021.json, made by tools/reference_2021.py; see tests/data/README.md)."""

import json
import os
import random
import subprocess
import sys

import numpy
import pytest
import soundfile
import torch
import torch.nn.functional as F

import trainSpeakerNet
from voxtrainer.cli.flags import parse_args
from conftest import ROOT
from models.frontend import htk_mel_filterbank
from tools.reference_2021 import SETTINGS, key_digest, key_list, make_wavs, seeded_weights, wav_names
from voxtrainer.reading.audio import crop_samples, load_random_crop, loadWAV
from voxtrainer.checkpoints import read_state_dict
from voxtrainer.errors import InputError
from voxtrainer.scoring.evaluation import evaluate_list
from voxtrainer.network import SpeakerNet
from voxtrainer.plugins import load_plugin

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFERENCE = json.load(open(os.path.join(ROOT, "tests", "data", "original2021.json")))["settings"]
SCORE_TOLERANCE = 1e-6  # measured: at most 2.2e-7 apart (float32 rounding of the distances)


def speaker_net(options, **overrides):
    settings = dict(options, **overrides)
    return SpeakerNet(model=settings["model"], trainfunc=settings["trainfunc"], nOut=settings["nOut"],
                      encoder_type=settings["encoder_type"], nClasses=settings["nClasses"],
                      n_mels=settings["n_mels"], log_input=settings["log_input"], protocol=settings.get("protocol"))


def front_end_buffers_2021(name, n_mels):
    """The 2021 models' front-end buffers, as its code (with torchaudio) builds them: a Hamming
    window in both models, HTK mel filters, the pre-emphasis taps."""
    if name.endswith("flipped_filter"):
        return torch.tensor([[[-0.97, 1.0]]])
    if name.endswith("window"):
        return torch.hamming_window(400)
    return htk_mel_filterbank(257, 0.0, 8000.0, n_mels, 16000)


def write_2021_checkpoint(label, path):
    """The checkpoint tools/reference_2021.py saved with the 2021 code's saveParameters: every
    weight from seeded_weights, the front-end buffers as that code built them."""
    options = REFERENCE[label]["options"]
    state = speaker_net(options).state_dict()
    buffers = {name: front_end_buffers_2021(name, options["n_mels"]) for name in state if "torchfb" in name}
    for name, value in buffers.items():  # the buffers we write are the ones the 2021 code saved
        expected = REFERENCE[label]["buffers"][name]
        assert numpy.allclose([value.double().sum().item(), (value.double() ** 2).sum().item()], expected,
                              rtol=1e-6), name
    torch.save(dict(state, **seeded_weights(state), **buffers), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The reference's WAV files and trial list (every pair), and each setting's checkpoint."""
    folder = str(tmp_path_factory.mktemp("original2021"))
    trials = make_wavs(folder)
    checkpoints = {label: write_2021_checkpoint(label, os.path.join(folder, label + ".model")) for label in SETTINGS}
    return folder, trials, checkpoints


def loaded_net(files, label, **overrides):
    folder, trials, checkpoints = files
    net = speaker_net(REFERENCE[label]["options"], **overrides)
    net.loadParameters(checkpoints[label])
    return net.eval()


# -- checkpoints --------------------------------------------------------------------------------

@pytest.mark.parametrize("label", sorted(SETTINGS))
def test_2021_checkpoint_keys_and_shapes_are_ours_in_order(label):
    ours = key_list(speaker_net(REFERENCE[label]["options"]).state_dict())
    assert key_digest(ours) == REFERENCE[label]["keys_sha256"]


def test_published_resnetse34v2_checkpoint_layout():
    # --model ResNetSE34V2 --encoder_type ASP --n_mels 64 --trainfunc softmaxproto, nOut 512, 5994 classes
    ours = key_list(speaker_net(REFERENCE["v2_asp64"]["options"]).state_dict())
    assert ours == REFERENCE["v2_asp64"]["keys"]
    names = [name for name, _ in ours]
    assert names[-4:] == ["__L__.softmax.fc.weight", "__L__.softmax.fc.bias",
                          "__L__.angleproto.w", "__L__.angleproto.b"]
    assert {"__S__.torchfb.0.flipped_filter", "__S__.torchfb.1.spectrogram.window", "__S__.torchfb.1.mel_scale.fb",
            "__S__.attention.0.weight", "__S__.attention.2.running_var", "__S__.attention.3.weight"} <= set(names)
    assert dict(ours)["__S__.fc.weight"] == [512, 4096]


@pytest.mark.parametrize("label", sorted(SETTINGS))
def test_2021_checkpoint_loads_with_no_missing_unexpected_or_misshaped_key(files, label):
    net = speaker_net(REFERENCE[label]["options"])
    saved = read_state_dict(files[2][label])
    own = net.state_dict()
    assert list(saved) == list(own)
    assert all(saved[name].shape == own[name].shape for name in own)


def test_loading_replaces_the_front_end_buffers_rather_than_recomputing_them(files):
    # A fresh ResNetSE34L keeps the 2020 Hann window; the 2021 checkpoint brings its Hamming window.
    fresh = speaker_net(REFERENCE["l_sap40"]["options"])
    assert torch.equal(fresh.__S__.torchfb.spectrogram.window, torch.hann_window(400))
    assert torch.equal(loaded_net(files, "l_sap40").__S__.torchfb.spectrogram.window, torch.hamming_window(400))


def test_resnetse34v2_builds_the_2021_front_end_buffers():
    net = speaker_net(REFERENCE["v2_asp64"]["options"])
    for name, value in net.state_dict().items():
        if "torchfb" in name:
            assert torch.equal(value, front_end_buffers_2021(name, 64)), name


# -- scores against the 2021 code ---------------------------------------------------------------

EVALUATIONS = [(label, index) for label in sorted(SETTINGS) for index in range(len(SETTINGS[label]["evals"]))
               if SETTINGS[label]["evals"][index][0] != 400]  # 400 frames: through the command line below


@pytest.mark.parametrize("label, index", EVALUATIONS)
def test_scores_and_eer_equal_the_2021_code(files, label, index):
    # ResNetSE34L reads by the 2020 protocol unless told: its 2021 checkpoints need --protocol 2021.
    reference = REFERENCE[label]["evals"][index]
    net = loaded_net(files, label, protocol="2021")
    result = evaluate_list(net, files[1], files[0], reference["eval_frames"], num_eval=reference["num_eval"],
                           progress=False)
    assert result.trials == reference["trials"] and result.labels == reference["labels"]
    assert numpy.abs(numpy.array(result.scores) - reference["scores"]).max() < SCORE_TOLERANCE
    assert result.eer == pytest.approx(reference["eer"])


def test_2021_checkpoint_read_by_the_2020_protocol_scores_differently(files):
    reference = REFERENCE["l_sap40"]["evals"][0]
    net = loaded_net(files, "l_sap40")
    assert net.protocol == "2020"
    result = evaluate_list(net, files[1], files[0], 100, num_eval=4, progress=False)
    assert numpy.abs(numpy.array(result.scores) - reference["scores"]).max() > 1e-3


@pytest.mark.parametrize("label", sorted(SETTINGS))
def test_raw_embeddings_equal_the_2021_code(files, label):
    net = loaded_net(files, label, protocol="2021")
    crops = loadWAV(os.path.join(files[0], wav_names()[0]), 100, evalmode=True, num_eval=4, protocol="2021")
    with torch.no_grad():
        embedding = net.__S__(crops)[:2, :16]
    expected = torch.tensor(REFERENCE[label]["embedding_file0_eval100"])
    assert (embedding - expected).abs().max().item() < 1e-5 * expected.abs().max().item()


def test_readme_eval_command_with_400_frame_crops_prints_the_2021_eer(files, tmp_path):
    folder, trials, checkpoints = files
    reference = REFERENCE["v2_asp64"]["evals"][2]
    assert (reference["eval_frames"], reference["num_eval"]) == (400, 10)
    command = [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"), "--eval", "--model", "ResNetSE34V2",
               "--log_input", "True", "--encoder_type", "ASP", "--n_mels", "64", "--trainfunc", "softmaxproto",
               "--save_path", str(tmp_path / "test"), "--eval_frames", "400",
               "--initial_model", checkpoints["v2_asp64"],
               "--test_list", trials, "--test_path", folder, "--nDataLoaderThread", "0", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "EER %2.4f" % reference["eer"] in done.stdout + done.stderr
    assert "does not fit" not in done.stdout + done.stderr  # no loss-head warning: 5,994 classes by default
    lines = open(tmp_path / "test" / "result" / "eval_scores.txt").read().split("\n")[:-1]
    scores = [float(line.split()[0]) for line in lines]
    assert numpy.abs(numpy.array(scores) - reference["scores"]).max() < 1e-6 + 5e-7  # printed to 6 decimals


# -- the 2021 audio protocol --------------------------------------------------------------------

def write_wav(path, samples, subtype="PCM_16"):
    data = samples if subtype == "PCM_16" else samples.astype(numpy.float32) / 32768
    soundfile.write(str(path), data, 16000, subtype=subtype)
    return str(path)


def samples(length, seed=0):
    return numpy.random.default_rng(seed).integers(-20000, 20000, length).astype(numpy.int16)


def test_2021_eval_crops_are_scaled_wrap_padded_and_evenly_started(tmp_path):
    audio = samples(10000)
    path = write_wav(tmp_path / "short.wav", audio)
    max_audio = crop_samples(100)
    crops = loadWAV(path, 100, evalmode=True, num_eval=3, protocol="2021")
    # At most one crop long: extended by repeating from the start to max_audio + 1 samples.
    padded = numpy.pad(audio / 32768.0, (0, max_audio - 10000 + 1), "wrap")
    assert crops.dtype == torch.float32 and crops.shape == (3, max_audio)
    for crop, start in zip(crops, numpy.linspace(0, 1, 3)):
        assert torch.equal(crop, torch.from_numpy(padded[int(start):int(start) + max_audio].astype(numpy.float32)))


def test_2021_crop_of_exactly_one_crop_length_is_also_wrap_padded(tmp_path):
    max_audio = crop_samples(100)
    audio = samples(max_audio)
    crops = loadWAV(write_wav(tmp_path / "exact.wav", audio), 100, num_eval=2, protocol="2021")
    # One sample appended (the file's first), so the second crop starts at 1 and ends with it.
    assert torch.equal(crops[1], torch.from_numpy(numpy.append(audio[1:], audio[0]) / numpy.float32(32768)))


def test_2021_whole_file_crop_is_the_scaled_file(tmp_path):
    audio = samples(5000)
    crops = loadWAV(write_wav(tmp_path / "f.wav", audio), 0, num_eval=10, protocol="2021")
    assert torch.equal(crops, torch.from_numpy(audio[None] / numpy.float32(32768)))


def test_2020_protocol_is_unchanged_int16_values_and_zero_padding(tmp_path):
    audio = samples(10000)
    crops = loadWAV(write_wav(tmp_path / "f.wav", audio), 100, num_eval=1)
    shortage = (crop_samples(100) - 10000 + 1) // 2
    assert torch.equal(crops[0, shortage:shortage + 10000], torch.from_numpy(audio.astype(numpy.float32)))
    assert crops[0, :shortage].abs().max() == 0


@pytest.mark.parametrize("length", [9000, 16240, 40000])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_2021_training_crop_is_the_2021_loadwav_crop_for_the_same_draw(tmp_path, length, subtype):
    audio = samples(length, seed=length)
    path = write_wav(tmp_path / "f.wav", audio, subtype)
    max_audio = crop_samples(100)
    for seed in range(3):
        # The 2021 loadWAV(evalmode=False): floats, wrap padding, start int64(random() * (size - max_audio)).
        whole = audio / 32768.0
        if length <= max_audio:
            whole = numpy.pad(whole, (0, max_audio - length + 1), "wrap")
        start = int(numpy.int64(random.Random(seed).random() * (whole.shape[0] - max_audio)))
        expected = whole[start:start + max_audio].astype(numpy.float32)
        crop = load_random_crop(path, 100, random.Random(seed), protocol="2021")
        assert numpy.array_equal(crop, expected)


def test_protocol_defaults_to_the_model_files_and_can_be_chosen():
    def protocol(model, chosen=None):
        return SpeakerNet(model=model, trainfunc="softmax", nOut=8, nClasses=4, protocol=chosen).protocol
    assert protocol("ResNetSE34V2") == "2021"
    assert protocol("ResNetSE34L") == protocol("ResNetSE34") == protocol("VGGVox") == "2020"
    assert protocol("ResNetSE34V2", "2020") == "2020" and protocol("ResNetSE34L", "2021") == "2021"
    with pytest.raises(InputError, match="valid protocols are 2020, 2021"):
        protocol("ResNetSE34L", "2019")


def test_protocol_flag_accepts_only_2020_and_2021():
    assert parse_args([]).protocol is None
    assert parse_args(["--protocol", "2021"]).protocol == "2021"
    with pytest.raises(InputError, match="protocol"):
        parse_args(["--protocol", "2022"])


def test_2021_training_step_passes_all_utterances_in_one_forward_pass():
    # BatchNorm in training mode sees the whole batch: both utterance positions together.
    torch.manual_seed(0)
    net = SpeakerNet(model="ResNetSE34V2", trainfunc="softmaxproto", nOut=16, nClasses=3, n_mels=40).train()
    data, label = torch.randn(3, 2, 3440) * 0.1, torch.tensor([0, 1, 2])
    loss, _ = net(data, label)
    torch.manual_seed(0)
    again = SpeakerNet(model="ResNetSE34V2", trainfunc="softmaxproto", nOut=16, nClasses=3, n_mels=40).train()
    out = again.__S__(data.transpose(0, 1).reshape(6, -1)).reshape(2, 3, -1).transpose(0, 1)
    assert torch.allclose(loss, again.__L__(out, label)[0], atol=1e-6)


# -- models -------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder, n_mels, parameters", [
    ("SAP", 40, 6389324), ("ASP", 40, 7044684), ("SAP", 64, 6979916), ("ASP", 64, 8028492)])
def test_resnetse34v2_parameter_counts_and_embedding_shape(encoder, n_mels, parameters):
    model = load_plugin("models", "ResNetSE34V2")(nOut=512, encoder_type=encoder, n_mels=n_mels).eval()
    assert sum(p.numel() for p in model.parameters()) == parameters
    # The pooled features: 256 channels x n_mels / 8 rows, twice that for ASP.
    assert model.fc.in_features == 256 * n_mels // 8 * (2 if encoder == "ASP" else 1)
    with torch.no_grad():
        assert model(torch.randn(3, 16240) * 0.1).shape == (3, 512)


def test_reference_parameter_counts_are_the_2021_models():
    for label, record in REFERENCE.items():
        net = speaker_net(record["options"])
        assert sum(p.numel() for p in net.__S__.parameters()) == record["parameters"], label


def test_resnetse34v2_accepts_only_its_attentive_encoders():
    with pytest.raises(ValueError, match="valid encoder types are SAP, ASP"):
        load_plugin("models", "ResNetSE34V2")(encoder_type="TAP")


def test_resnetse34v2_pooling_is_per_channel_attention():
    model = load_plugin("models", "ResNetSE34V2")(nOut=8, encoder_type="ASP", n_mels=40).eval()
    frames = torch.randn(2, 1280, 9)
    weights = model.attention(frames)
    assert torch.allclose(weights.sum(dim=2), torch.ones(2, 1280), atol=1e-5)  # softmax over time
    mu = (frames * weights).sum(dim=2)
    sigma = ((frames ** 2 * weights).sum(dim=2) - mu ** 2).clamp(min=1e-5).sqrt()
    assert torch.allclose(model.pool(frames), torch.cat((mu, sigma), 1), atol=1e-5)
    model.encoder_type = "SAP"
    assert torch.allclose(model.pool(frames), mu, atol=1e-6)


@pytest.mark.parametrize("name", ["ResNetSE34L", "ResNetSE34", "VGGVox"])
def test_asp_is_every_2020_model_s_frame_attention_with_mean_and_deviation(name):
    model = load_plugin("models", name)(nOut=8, encoder_type="ASP").eval()
    frames = torch.randn(2, model.sap_linear.in_features, 7).transpose(1, 2)  # (batch, frames, channels)
    weights = torch.softmax(torch.tanh(model.sap_linear(frames)) @ model.attention, dim=1)
    mu = (frames * weights).sum(dim=1)
    sigma = ((frames ** 2 * weights).sum(dim=1) - mu ** 2).clamp(min=1e-5).sqrt()
    assert torch.allclose(model.pool(frames.transpose(1, 2)), torch.cat((mu, sigma), 1), atol=1e-5)
    assert model.fc.in_features == 2 * model.sap_linear.in_features


@pytest.mark.parametrize("n_mels", [40, 64, 80])
def test_resnetse34l_takes_any_number_of_mel_bands(n_mels):
    model = load_plugin("models", "ResNetSE34L")(nOut=16, n_mels=n_mels).eval()
    assert model.torchfb.mel_scale.fb.shape == (257, n_mels)
    with torch.no_grad():
        assert model(torch.randn(2, 16240) * 1000).shape == (2, 16)


def test_log_input_false_normalises_the_mel_energies_themselves():
    model = load_plugin("models", "ResNetSE34V2")(n_mels=40, log_input=False)
    waveform = torch.randn(1, 16240) * 0.1
    mel = model.torchfb[1](model.torchfb[0](waveform)) + 1e-6
    assert torch.allclose(model.torchfb(waveform)[:, 0], F.instance_norm(mel), atol=1e-5)
    model.torchfb.log_input = True
    assert torch.allclose(model.torchfb(waveform)[:, 0], F.instance_norm(mel.log()), atol=1e-5)


def test_pre_emphasis_uses_the_second_sample_as_the_first_one_s_predecessor():
    emphasis = load_plugin("models", "ResNetSE34V2")().torchfb[0]
    x = torch.tensor([[1.0, 2.0, 4.0, 8.0]])
    assert torch.allclose(emphasis(x), torch.tensor([[1 - 0.97 * 2, 2 - 0.97, 4 - 0.97 * 2, 8 - 0.97 * 4]]))


# -- softmaxproto -------------------------------------------------------------------------------

def test_softmaxproto_is_softmax_over_both_utterances_plus_angular_prototypical():
    torch.manual_seed(0)
    loss = load_plugin("loss", "softmaxproto")(nOut=6, nClasses=5)
    x = torch.randn(4, 2, 6, requires_grad=True)
    label = torch.tensor([3, 0, 4, 1])
    value, accuracy = loss(x, label)
    value.backward()
    grad = x.grad.clone()

    y = x.detach().clone().requires_grad_(True)
    logits = y.reshape(8, 6) @ loss.softmax.fc.weight.T + loss.softmax.fc.bias
    target = torch.tensor([3, 3, 0, 0, 4, 4, 1, 1])
    cos = F.cosine_similarity(y[:, 0].unsqueeze(1), y[:, 1].unsqueeze(0), dim=-1)  # query vs prototype
    expected = F.cross_entropy(logits, target) + F.cross_entropy(cos * 10.0 - 5.0, torch.arange(4))
    expected.backward()
    assert torch.allclose(value, expected, atol=1e-6)
    assert torch.allclose(grad, y.grad, atol=1e-6)
    assert accuracy == pytest.approx(100.0 * (logits.argmax(1) == target).float().mean().item())


def test_softmaxproto_contract():
    loss_class = load_plugin("loss", "softmaxproto")
    assert (loss_class.train_normalize, loss_class.test_normalize) == (False, True)
    assert loss_class.utterances_per_speaker == 2 and loss_class.classifies_speakers
    assert set(loss_class(nOut=4, nClasses=3).state_dict()) == {"softmax.fc.weight", "softmax.fc.bias",
                                                                "angleproto.w", "angleproto.b"}


# -- command line -------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, expected", [
    ([], True), (["--log_input"], True), (["--log_input", "True"], True), (["--log_input", "False"], False),
    (["--log_input", "false"], False), (["--log_input", "1"], True)])
def test_log_input_takes_the_bare_flag_and_true_or_false(flags, expected):
    assert parse_args(flags).log_input is expected


def test_log_input_rejects_other_words_and_config_reads_booleans(tmp_path):
    with pytest.raises(InputError, match="log_input"):
        parse_args(["--log_input", "maybe"])
    config = tmp_path / "c.yaml"
    config.write_text("log_input: false\nn_mels: 64\nprotocol: '2021'\n")
    args = parse_args(["--config", str(config)])
    assert (args.log_input, args.n_mels, args.protocol) == (False, 64, "2021")


def test_n_mels_defaults_to_40():
    assert parse_args([]).n_mels == 40


def test_one_epoch_of_resnetse34v2_with_softmaxproto_trains_and_evaluates(demo_set, tmp_path):
    demo = demo_set(n_train_speakers=4, n_test_speakers=2, utts_per_speaker=2)
    flags = ["--train_list", demo.train_list, "--test_list", demo.test_list, "--train_path", demo.train_path,
             "--test_path", demo.test_path, "--save_path", str(tmp_path), "--model", "ResNetSE34V2",
             "--encoder_type", "ASP", "--n_mels", "40", "--log_input", "True", "--trainfunc", "softmaxproto",
             "--nClasses", "4", "--nOut", "16", "--max_frames", "50", "--eval_frames", "50", "--batch_size", "2",
             "--max_epoch", "1", "--test_interval", "1", "--nDataLoaderThread", "0", "--device", "cpu"]
    assert trainSpeakerNet.main(flags) == 0
    saved = read_state_dict(str(tmp_path / "model" / "model000000001.model"))
    assert "__L__.softmax.fc.weight" in saved and "__S__.attention.3.weight" in saved
    assert float(open(tmp_path / "model" / "model000000001.eer").read()) >= 0


# -- export -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("model, log_input", [("ResNetSE34V2", True), ("ResNetSE34L", False)])
def test_2021_front_ends_export_and_reproduce_the_pytorch_embeddings(tmp_path, fmt, model, log_input):
    from voxtrainer.inference.export import export
    torch.manual_seed(0)
    net = SpeakerNet(model=model, trainfunc="softmaxproto", nOut=16, nClasses=4, n_mels=40, log_input=log_input)
    # export() itself refuses to write a file whose embeddings differ from PyTorch's by over 1e-4 relative.
    exported = export(net, fmt, str(tmp_path / ("net." + fmt)))
    assert exported.difference < 1e-4
