"""--eval reproduces the original's scores and EER; checkpoints load strictly and safely."""

import os
import subprocess
import sys

import numpy
import pytest
import torch

from conftest import ROOT
from voxtrainer.errors import InputError
from voxtrainer.scoring.metrics import min_dcf_line, min_dcfs
from SpeakerNet import SpeakerNet
from voxtrainer.scoring.trials import trial_scores
from tuneThreshold import minDCF, tuneThresholdfromScore


def run_eval(original, save_path, max_frames, *extra):
    command = [sys.executable, os.path.join(ROOT, "trainSpeakerNet.py"), "--eval", "--model", "ResNetSE34L",
               "--trainfunc", "angleproto", "--max_frames", str(max_frames), "--save_path", str(save_path),
               "--test_list", original.trials, "--test_path", original.wav, "--initial_model", original.checkpoint,
               "--nDataLoaderThread", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("max_frames, reference", [(300, "max_frames_300"), (0, "whole_file")])
def test_eval_prints_the_original_eer_and_writes_its_scores(original, tmp_path, max_frames, reference):
    result = run_eval(original, tmp_path, max_frames)
    assert result.returncode == 0, result.stderr
    expected_eer = open(original.file("eer_%s.txt" % reference)).read().strip()
    assert "EER %s" % expected_eer in result.stdout.splitlines()

    ours = [line.split() for line in open(tmp_path / "result" / "eval_scores.txt")]
    theirs = [line.split() for line in open(original.file("scores_%s.txt" % reference))]
    assert [row[1:] for row in ours] == [row[1:] for row in theirs]
    assert numpy.allclose([float(r[0]) for r in ours], [float(r[0]) for r in theirs], rtol=0, atol=1e-4)


def test_trial_scores_are_minus_the_mean_crop_pair_distance_with_pairwise_distance_eps():
    torch.manual_seed(0)
    enrol, test = torch.randn(5, 3, 8), torch.randn(5, 3, 8)
    expected = [-numpy.mean([[numpy.linalg.norm(e - t + 1e-6) for t in tt] for e in ee])
                for ee, tt in zip(enrol.double().numpy(), test.double().numpy())]
    # files 0-4 are the enrol sides, 5-9 the test sides: trial t is file t against file 5 + t
    scores = trial_scores(torch.cat([enrol, test]), torch.arange(5), torch.arange(5, 10), block=2)
    assert numpy.allclose(scores.numpy(), expected, atol=1e-6)



def gathered_trial_scores(enrol, test, block=4096):
    """The trial scorer as it was before it gathered crops block by block: every trial's crops
    gathered up front (enrol, test: (trials, crops, dim)), then scored 4096 trials at a time."""
    return torch.cat([-torch.cdist(enrol[first:first + block] + 1e-6, test[first:first + block],
                                   compute_mode="donot_use_mm_for_euclid_dist").flatten(-2).mean(dim=-1)
                      for first in range(0, enrol.shape[0], block)])


@pytest.mark.parametrize("block", [1, 7, 256, 4096])
def test_scores_gathered_block_by_block_are_bit_for_bit_those_of_all_trials_gathered_at_once(block):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(300, 10, 512, generator=generator)
    enrol = torch.randint(0, 300, (1000,), generator=generator)
    test = torch.randint(0, 300, (1000,), generator=generator)
    enrol[:3] = test[:3]  # a file against itself, too
    assert torch.equal(trial_scores(embeddings, enrol, test, block=block),
                       gathered_trial_scores(embeddings[enrol], embeddings[test]))


def test_trial_scores_of_an_empty_list_and_mismatched_indices():
    embeddings = torch.randn(4, 10, 16)
    assert trial_scores(embeddings, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0,)
    with pytest.raises(ValueError):
        trial_scores(embeddings, torch.tensor([0, 1]), torch.tensor([2]))

def test_eer_is_the_max_of_fpr_and_fnr_where_they_cross():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    labels = [1, 1, 0, 1, 0, 0]
    _, eer, fpr, fnr = tuneThresholdfromScore(scores, labels, [1, 0.1])
    assert eer == pytest.approx(100 / 3)
    assert fpr[0] == 0 and fnr[-1] == 0


def test_min_dcf_equals_a_brute_force_search_over_thresholds():
    rng = numpy.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.normal(size=200) + labels
    best = min(0.05 * numpy.mean(scores[labels == 1] < t) + 0.95 * numpy.mean(scores[labels == 0] >= t)
               for t in numpy.concatenate([scores, [numpy.inf]]))
    assert minDCF(scores, labels, 0.05) == pytest.approx(best / 0.05)


def test_min_dcfs_of_one_sort_are_minDCF_at_each_printed_prior():
    rng = numpy.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = rng.normal(size=300) + labels
    dcfs = min_dcfs(scores, labels)
    assert dcfs == {p: minDCF(scores, labels, p) for p in (0.05, 0.01)}
    assert min_dcf_line(dcfs) == "MinDCF %.4f (p_target 0.05), %.4f (p_target 0.01)" % (dcfs[0.05], dcfs[0.01])


def make_net(model="ResNetSE34L", trainfunc="angleproto", **kwargs):
    return SpeakerNet(model=model, trainfunc=trainfunc, nOut=512, encoder_type=kwargs.pop("encoder_type", "SAP"),
                      nClasses=kwargs.pop("nClasses", 12), **kwargs)


def test_a_dataparallel_module_prefix_is_accepted(original, tmp_path):
    state = torch.load(original.checkpoint, weights_only=True)
    prefixed = tmp_path / "dp.model"
    torch.save({"module." + name: value for name, value in state.items()}, prefixed)
    net = make_net()
    net.loadParameters(str(prefixed))
    assert all(torch.equal(net.state_dict()[name], value) for name, value in state.items())


def test_a_checkpoint_of_another_model_is_one_clear_error(original):
    with pytest.raises(InputError) as error:
        make_net(model="VGGVox").loadParameters(original.checkpoint)
    assert original.checkpoint in error.value.line and "__S__." in error.value.line


def test_a_corrupt_checkpoint_is_one_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.model"
    corrupt.write_bytes(b"\x80\x02 definitely not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint") as error:
        make_net().loadParameters(str(corrupt))
    assert str(corrupt) in error.value.line


def test_checkpoints_are_loaded_without_unpickling_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch %s" % (tmp_path / "pwned"),))
    malicious = tmp_path / "malicious.model"
    torch.save({"x": Payload()}, malicious)
    with pytest.raises(InputError):
        make_net().loadParameters(str(malicious))
    assert not (tmp_path / "pwned").exists()


def test_saved_checkpoints_have_the_original_format_and_round_trip(tmp_path):
    net = make_net(trainfunc="amsoftmax", model="ResNetSE34")
    path = tmp_path / "model000000001.model"
    net.saveParameters(str(path))
    saved = torch.load(path, weights_only=True)
    assert set(saved) == set(net.state_dict()) and all(k.startswith(("__S__.", "__L__.")) for k in saved)
    other = make_net(trainfunc="amsoftmax", model="ResNetSE34")
    other.loadParameters(str(path))
    assert all(torch.equal(other.state_dict()[k], v) for k, v in saved.items())


def test_eval_cli_reports_bad_inputs_in_one_line(original, tmp_path):
    bad_list = tmp_path / "list.txt"
    bad_list.write_text("1 id10270/9kU0Q45ZHqk/00001.wav id99999/none/00001.wav\n")
    result = run_eval(original, tmp_path, 300, "--test_list", str(bad_list))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "id99999/none/00001.wav" in result.stderr
    assert "--test_path" in result.stderr
