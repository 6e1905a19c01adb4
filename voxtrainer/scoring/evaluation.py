"""Scoring a verification list with the original protocol, and what an evaluation reports: the
EER line, the minDCF line, the score file and the figures."""

import os
from typing import NamedTuple

import numpy
import torch

from voxtrainer import log
from voxtrainer.atomic import write_text
from voxtrainer.scoring.calibration import bayes_threshold, posterior
from voxtrainer.errors import InputError
from voxtrainer.training.distributed import gather_sharded
from voxtrainer.reading.lists import TestList
from voxtrainer.scoring.metrics import equal_error_rate, min_dcf_line, min_dcfs
from voxtrainer.scoring.trials import cosine_ready, trial_scores


class Evaluation(NamedTuple):
    eer: float          # percent
    scores: list        # per trial, in list order
    labels: list
    trials: list        # 'enrol test'
    files: list         # the list's unique files (relative names), sorted
    embeddings: object  # (files, crops, nOut) tensor, for score normalisation


def evaluate_list(net, test_list, test_path, eval_frames, num_eval=10, num_workers=0, progress=True,
                  score_mean=None):
    """Every unique file of the list is embedded from its eval crops and every trial scored
    (score_pairs). Under torch.distributed each rank embeds a shard of the files and every
    rank gets all scores. With a `score_mean` (read_score_mean), or for an embedding network
    without a loss, trials are scored as WeSpeaker scores them (scoring_embeddings)."""
    trials = TestList(test_list, test_path)
    paths = [os.path.join(test_path, name) for name in trials.files]
    index = {name: position for position, name in enumerate(trials.files)}
    pairs = [(index[a], index[b]) for a, b in trials.trials]
    scores, embeddings = score_pairs(net, paths, pairs, eval_frames, num_eval, num_workers, progress, score_mean)
    return Evaluation(equal_error_rate(scores, trials.labels), scores, trials.labels,
                      ["%s %s" % trial for trial in trials.trials], trials.files, embeddings)


def score_pairs(net, paths, pairs, eval_frames, num_eval=10, num_workers=0, progress=True, score_mean=None):
    """The one way a pair of files is scored, by --eval and --verify alike: each file embedded from
    its eval crops (SpeakerNet.embed_files), the embeddings prepared for scoring
    (scoring_embeddings), each (enrol index, test index) pair scored by voxtrainer.scoring.trials.
    Returns (scores as a list, the scoring embeddings (files, crops, nOut))."""
    embeddings = gather_sharded(
        lambda shard: net.embed_files(shard, eval_frames, num_eval, num_workers, progress=progress), paths)
    check_finite_embeddings(embeddings, paths)
    embeddings = scoring_embeddings(net, embeddings, score_mean)
    enrol = torch.tensor([a for a, _ in pairs], dtype=torch.long)
    test = torch.tensor([b for _, b in pairs], dtype=torch.long)
    return trial_scores(embeddings, enrol, test).tolist(), embeddings  # gathers the crops block by block


def check_finite_embeddings(embeddings, paths):
    """InputError naming the first file whose embedding (files, crops, dim) holds a NaN or an
    infinity: every score of it would be NaN, and a NaN ranks no trial. A network gives them when
    its weights or BatchNorm statistics have diverged or overflow in eval mode, which a finite
    training loss (measured with the batch's statistics) does not show."""
    finite = torch.isfinite(embeddings).flatten(1).all(dim=1).cpu()
    if bool(finite.all()):
        return
    bad = (~finite).nonzero().flatten().tolist()
    raise InputError("%s: the network's embedding is not finite (NaN or infinite; %d of %d files), so no score, EER "
                     "or minDCF; its weights have diverged: try a lower --lr (a training run keeps the "
                     "checkpoints of its earlier evaluations in model/)" % (paths[bad[0]], len(bad), len(paths)))


def scoring_embeddings(net, embeddings, score_mean=None):
    """The embeddings the trial scorer sees: as embedded for a network with a loss and no mean
    (the original's scoring, unchanged); else WeSpeaker's cosine scoring (scoring.cosine_ready)
    after subtracting `score_mean` (none: zero)."""
    if score_mean is None and getattr(net, "__L__", True) is not None:
        return embeddings
    if score_mean is not None and embeddings.shape[-1] != score_mean.shape[0]:
        raise InputError("--score_mean_from: a mean of %d values, but the model's embeddings have %d" % (
            score_mean.shape[0], embeddings.shape[-1]))
    return cosine_ready(embeddings, score_mean)


def scoring_description(net, score_mean_from=""):
    """How scoring_embeddings has the trials scored, in words: a calibration of scores made one way
    does not apply to scores made another way."""
    if score_mean_from or getattr(net, "__L__", True) is None:
        return "cosine" + (" after subtracting the mean embedding of %s" % os.path.abspath(score_mean_from)
                           if score_mean_from else "")
    return "crop distances of %s embeddings" % ("normalised" if net.test_normalize else "unnormalised")


def read_score_mean(path):
    """--score_mean_from: the mean embedding to subtract before cosine scoring, from an .npz that
    --extract wrote (the mean of its `embeddings`; WeSpeaker uses its training set's, VoxCeleb2
    dev) or from a .npy vector (WeSpeaker's mean_vec.npy)."""
    try:
        loaded = numpy.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError("--score_mean_from %s: not a readable .npz or .npy file (%s)" % (path, error))
    if isinstance(loaded, numpy.ndarray):
        mean = loaded
    else:
        with loaded:
            if "embeddings" not in loaded or loaded["embeddings"].ndim != 2 or not len(loaded["embeddings"]):
                raise InputError("--score_mean_from %s: holds no (files, dim) `embeddings` (write it with "
                                 "--extract)" % path)
            mean = loaded["embeddings"].astype(numpy.float64).mean(axis=0)
    mean = numpy.asarray(mean)
    if mean.ndim != 1 or mean.size == 0 or not numpy.isfinite(mean).all():
        raise InputError("--score_mean_from %s: need a non-empty finite vector or (files, dim) embeddings, got "
                         "shape %s" % (path, mean.shape))
    return torch.from_numpy(mean.astype(numpy.float32))


def write_scores(path, scores, labels, trials):
    """`score label enrol test` per trial, in list order."""
    write_text(path, "".join("%.6f %d %s\n" % row for row in zip(scores, labels, trials)))


def report(scores, labels, trials, result_dir, score_file, figures, eer_prefix=""):
    """Print the EER line (`<eer_prefix>EER x`, the seed's line without a prefix) and the minDCF
    line; write the score file and the figures (`<figures>_det.png`, `<figures>_hist.png`)."""
    from voxtrainer.scoring.reports import write_reports
    log.info("%sEER %2.4f" % (eer_prefix, equal_error_rate(scores, labels)))
    log.info(min_dcf_line(min_dcfs(scores, labels)))
    os.makedirs(result_dir, exist_ok=True)
    write_scores(os.path.join(result_dir, score_file), scores, labels, trials)
    write_reports(scores, labels, result_dir, figures)


class Verdict(NamedTuple):
    """One verified pair: its score and, with a calibration, what the score means."""
    first: str
    second: str
    score: float
    llr: object = None          # float, or None without a calibration
    probability: object = None  # P(same speaker) at `prior`
    prior: float = 0.5
    same: object = None         # the decision at the calibrated (Bayes) threshold for `prior`

    def line(self):
        text = "%s %s: score %.6f" % (self.first, self.second, self.score)
        if self.llr is None:
            return text
        return "%s, llr %.4f, P(same speaker) %.4f at prior %g, decision: %s (calibrated threshold llr >= %.4f)" % (
            text, self.llr, self.probability, self.prior, "same speaker" if self.same else "different speakers",
            bayes_threshold(self.prior))


def verify_pairs(net, pairs, eval_frames, calibration=None, prior=0.5, num_workers=0, score_mean=None, num_eval=10):
    """Score (path A, path B) pairs exactly as --eval scores trials (score_pairs: the same crops
    of --eval_frames, the same scorer) -> [Verdict]; with a calibration (voxtrainer.scoring.calibration),
    each score's llr, posterior at `prior` and decision."""
    files = sorted({path for pair in pairs for path in pair})
    index = {path: position for position, path in enumerate(files)}
    scores, _ = score_pairs(net, files, [(index[a], index[b]) for a, b in pairs], eval_frames, num_eval,
                            num_workers, progress=False, score_mean=score_mean)
    verdicts = []
    for (first, second), score in zip(pairs, scores):
        if calibration is None:
            verdicts.append(Verdict(first, second, score, prior=prior))
            continue
        llr = calibration.llr(score)
        verdicts.append(Verdict(first, second, score, llr, posterior(llr, prior), prior, llr >= bayes_threshold(prior)))
    return verdicts


def write_verdicts(path, verdicts):
    """`A B score llr probability decision` per pair (`-` for what needs a calibration)."""
    def row(verdict):
        if verdict.llr is None:
            return "%s %s %.6f - - -\n" % (verdict.first, verdict.second, verdict.score)
        return "%s %s %.6f %.6f %.6f %s\n" % (verdict.first, verdict.second, verdict.score, verdict.llr,
                                             verdict.probability, "same" if verdict.same else "different")
    write_text(path, "".join(row(verdict) for verdict in verdicts))
