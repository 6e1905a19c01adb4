"""Score normalisation: AS-norm and S-norm against a direct NumPy computation of the formula, and
--eval --score_norm: both EERs printed, cohort embeddings cached beside the checkpoint, bad cohorts."""

import os

import numpy
import pytest
import torch

import trainSpeakerNet
from voxtrainer.scoring.score_norm import normalise_trials
from voxtrainer.scoring.trials import cross_scores
from SpeakerNet import SpeakerNet
from voxtrainer.scoring.trials import trial_scores


def trial_score(a, b):
    """The trainer's score of two files' crop embeddings: -mean over crop pairs of ||a_i - b_j + 1e-6||."""
    return -numpy.mean([[numpy.linalg.norm(x - y + 1e-6) for y in b] for x in a])


def expected_normalised(method, trials, files, embeddings, cohort, top_k):
    """s_norm = ((s - mean_e) / std_e + (s - mean_t) / std_t) / 2, written out in NumPy."""
    def statistics(name):
        scores = numpy.array([trial_score(embeddings[files.index(name)], c) for c in cohort])
        if method == "asnorm":
            scores = numpy.sort(scores)[::-1][:top_k]
        return scores.mean(), scores.std()

    normalised = []
    for enrol, test in trials:
        s = trial_score(embeddings[files.index(enrol)], embeddings[files.index(test)])
        (mean_e, std_e), (mean_t, std_t) = statistics(enrol), statistics(test)
        normalised.append(0.5 * ((s - mean_e) / std_e + (s - mean_t) / std_t))
    return numpy.array(normalised)


@pytest.fixture
def tiny():
    rng = numpy.random.default_rng(0)
    files = ["a.wav", "b.wav", "c.wav", "d.wav"]
    embeddings = rng.normal(size=(4, 3, 5)).astype(numpy.float32)
    cohort = rng.normal(size=(7, 3, 5)).astype(numpy.float32)
    trials = [("a.wav", "b.wav"), ("a.wav", "c.wav"), ("d.wav", "b.wav"), ("c.wav", "d.wav")]
    index = {name: position for position, name in enumerate(files)}
    enrol = torch.tensor([index[a] for a, _ in trials])
    test = torch.tensor([index[b] for _, b in trials])
    raw = trial_scores(torch.from_numpy(embeddings), enrol, test).tolist()  # as evaluate_list scores the trials
    return files, embeddings, cohort, trials, raw


@pytest.mark.parametrize("method, top_k", [("asnorm", 3), ("snorm", 3), ("asnorm", 100)])
def test_normalisation_is_the_formula_over_the_top_k_cohort_scores(tiny, method, top_k):
    files, embeddings, cohort, trials, raw = tiny
    ours = normalise_trials(method, raw, ["%s %s" % trial for trial in trials], files, torch.from_numpy(embeddings),
                            torch.from_numpy(cohort), top_k)
    numpy.testing.assert_allclose(ours, expected_normalised(method, trials, files, embeddings, cohort, top_k),
                                  rtol=1e-5, atol=1e-5)


def test_asnorm_with_a_top_k_beyond_the_cohort_is_snorm(tiny):
    files, embeddings, cohort, trials, raw = tiny
    trials = ["%s %s" % trial for trial in trials]
    numpy.testing.assert_allclose(normalise_trials("asnorm", raw, trials, files, embeddings, cohort, 7),
                                  normalise_trials("snorm", raw, trials, files, embeddings, cohort, 2))


def test_cohort_scores_are_trial_scores(tiny):
    _, embeddings, cohort, _, _ = tiny
    expected = [[trial_score(e, c) for c in cohort] for e in embeddings]
    numpy.testing.assert_allclose(cross_scores(torch.from_numpy(embeddings), torch.from_numpy(cohort)), expected,
                                  rtol=1e-5)


def test_a_cohort_score_is_bit_for_bit_the_raw_trial_score_of_the_same_pair():
    generator = torch.Generator().manual_seed(0)
    files, cohort = torch.randn(6, 10, 512, generator=generator), torch.randn(9, 10, 512, generator=generator)
    cohort_scores = cross_scores(files, cohort)
    both = torch.cat([files, cohort])  # cohort file c is file 6 + c
    for file_index, cohort_index in ((0, 0), (2, 5), (5, 8)):
        raw = trial_scores(both, torch.tensor([file_index]), torch.tensor([6 + cohort_index]))
        assert cohort_scores[file_index, cohort_index].item() == raw.item()


# -- --eval --score_norm ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_set):
    root = tmp_path_factory.mktemp("score_norm")
    demo = demo_set()
    torch.manual_seed(0)
    checkpoint = str(root / "tiny.model")
    SpeakerNet(model="ResNetSE34L", trainfunc="angleproto", nOut=32).saveParameters(checkpoint)
    return demo, checkpoint


def eval_flags(demo, checkpoint, save_path, *extra):
    return ["--eval", "--model", "ResNetSE34L", "--trainfunc", "angleproto", "--nOut", "32", "--eval_frames", "50",
            "--initial_model", checkpoint, "--test_list", demo.test_list, "--test_path", demo.test_path,
            "--save_path", str(save_path), "--nDataLoaderThread", "0", *extra]


def test_eval_prints_both_eers_and_caches_the_cohort_beside_the_checkpoint(setup, tmp_path, capsys):
    demo, checkpoint = setup
    flags = eval_flags(demo, checkpoint, tmp_path, "--score_norm", "asnorm", "--top_k", "3",
                       "--cohort_list", demo.train_list, "--cohort_path", demo.train_path)
    assert trainSpeakerNet.main(flags) == 0
    first = capsys.readouterr().out.splitlines()
    eer_lines = [line for line in first if "EER" in line]
    assert eer_lines[0].startswith("EER ") and len(eer_lines[0].split()) == 2  # the seed's line, first
    assert eer_lines[1].startswith("AS-norm (top 3 of 8 cohort files): EER ")
    cached = [name for name in os.listdir(os.path.dirname(checkpoint)) if name.startswith("tiny.cohort-")]
    assert len(cached) == 1 and any("cached in" in line for line in first)
    normalised = numpy.loadtxt(tmp_path / "result" / "eval_scores_asnorm.txt", usecols=0)

    assert trainSpeakerNet.main(flags) == 0
    second = capsys.readouterr().out.splitlines()
    assert any("read from" in line for line in second)
    assert [line for line in second if "EER" in line] == eer_lines
    numpy.testing.assert_allclose(numpy.loadtxt(tmp_path / "result" / "eval_scores_asnorm.txt", usecols=0),
                                  normalised, atol=1e-6)
    for name in ("eval_det.png", "eval_hist.png", "eval_asnorm_det.png", "eval_asnorm_hist.png"):
        assert os.path.isfile(tmp_path / "result" / name)


def test_a_cohort_list_naming_missing_files_is_one_clear_error(setup, tmp_path, capsys):
    demo, checkpoint = setup
    cohort = tmp_path / "cohort.txt"
    cohort.write_text("id00001/clip01/00001.wav\nnobody/none.wav\n")
    status = trainSpeakerNet.main(eval_flags(demo, checkpoint, tmp_path, "--score_norm", "snorm",
                                             "--cohort_list", str(cohort), "--cohort_path", demo.train_path))
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert str(cohort) in err and "nobody/none.wav (line 2)" in err and "--cohort_path" in err
