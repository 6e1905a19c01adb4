"""Scoring a verification list with the original protocol, and what an evaluation reports: the
EER line, the minDCF line, the score file and the figures."""

import os
from typing import NamedTuple

import torch

from voxtrainer import log
from voxtrainer.atomic import write_text
from voxtrainer.distributed import gather_sharded
from voxtrainer.lists import TestList
from voxtrainer.metrics import equal_error_rate, min_dcf_line
from voxtrainer.scoring import trial_scores


class Evaluation(NamedTuple):
    eer: float          # percent
    scores: list        # per trial, in list order
    labels: list
    trials: list        # 'enrol test'
    files: list         # the list's unique files (relative names), sorted
    embeddings: object  # (files, crops, nOut) tensor, for score normalisation


def evaluate_list(net, test_list, test_path, eval_frames, num_eval=10, num_workers=0, progress=True):
    """Every unique file of the list is embedded from its eval crops and every trial scored
    (voxtrainer.scoring). Under torch.distributed each rank embeds a shard of the files and every
    rank gets all scores."""
    trials = TestList(test_list, test_path)
    paths = [os.path.join(test_path, name) for name in trials.files]
    embeddings = gather_sharded(
        lambda shard: net.embed_files(shard, eval_frames, num_eval, num_workers, progress=progress), paths)
    index = {name: position for position, name in enumerate(trials.files)}
    enrol = torch.tensor([index[a] for a, _ in trials.trials], dtype=torch.long)
    test = torch.tensor([index[b] for _, b in trials.trials], dtype=torch.long)
    scores = trial_scores(embeddings, enrol, test).tolist()  # gathers the crops block by block
    return Evaluation(equal_error_rate(scores, trials.labels), scores, trials.labels,
                      ["%s %s" % trial for trial in trials.trials], trials.files, embeddings)


def write_scores(path, scores, labels, trials):
    """`score label enrol test` per trial, in list order."""
    write_text(path, "".join("%.6f %d %s\n" % row for row in zip(scores, labels, trials)))


def report(scores, labels, trials, result_dir, score_file, figures, eer_prefix=""):
    """Print the EER line (`<eer_prefix>EER x`, the seed's line without a prefix) and the minDCF
    line; write the score file and the figures (`<figures>_det.png`, `<figures>_hist.png`)."""
    from voxtrainer.reports import write_reports
    log.info("%sEER %2.4f" % (eer_prefix, equal_error_rate(scores, labels)))
    log.info(min_dcf_line(scores, labels))
    os.makedirs(result_dir, exist_ok=True)
    write_scores(os.path.join(result_dir, score_file), scores, labels, trials)
    write_reports(scores, labels, result_dir, figures)
