"""Cohort score normalisation of verification trials: symmetric (S-norm) and adaptive symmetric
(AS-norm, Matejka et al., Interspeech 2017).

With s the raw score of trial (enrol e, test t) and the scores of e and of t against every cohort
file, scored exactly as trials (voxtrainer.scoring.trials):

    s_norm = ((s - mean_e) / std_e + (s - mean_t) / std_t) / 2

S-norm takes mean and standard deviation (population, ddof=0) over the whole cohort, AS-norm over
each side's top_k highest cohort scores. Cohort embeddings depend only on the checkpoint, the
cohort files and the crops, so they are cached beside the checkpoint."""

import hashlib
import json
import os

import numpy

from voxtrainer import log
from voxtrainer.atomic import save_npz
from voxtrainer.errors import InputError
from voxtrainer.reading.lists import read_path_list

METHODS = {"snorm": "S-norm", "asnorm": "AS-norm"}


def cohort_statistics(cohort_scores, top_k=None):
    """Per row: (mean, std) of its top_k highest cohort scores (every score when top_k is None)."""
    cohort_scores = numpy.asarray(cohort_scores, dtype=numpy.float64)
    if top_k is not None and top_k < cohort_scores.shape[1]:
        cohort_scores = -numpy.partition(-cohort_scores, top_k - 1, axis=1)[:, :top_k]
    return cohort_scores.mean(axis=1), cohort_scores.std(axis=1)


def normalise(scores, enrol_index, test_index, mean, std):
    """s_norm = ((s - mean_e) / std_e + (s - mean_t) / std_t) / 2 for each trial."""
    scores = numpy.asarray(scores, dtype=numpy.float64)
    return 0.5 * ((scores - mean[enrol_index]) / std[enrol_index] + (scores - mean[test_index]) / std[test_index])


def normalise_trials(method, scores, trials, test_files, test_embeddings, cohort_embeddings, top_k):
    """Normalised scores of `trials` ('enrol test' strings, as evaluate_list returns them)."""
    import torch
    from voxtrainer.scoring.trials import cross_scores
    index = {name: position for position, name in enumerate(test_files)}
    pairs = [trial.split() for trial in trials]
    enrol_index = numpy.array([index[enrol] for enrol, _ in pairs], dtype=numpy.int64)
    test_index = numpy.array([index[test] for _, test in pairs], dtype=numpy.int64)
    cohort_scores = cross_scores(torch.as_tensor(test_embeddings, dtype=torch.float32),
                                 torch.as_tensor(cohort_embeddings, dtype=torch.float32)).double().numpy()
    mean, std = cohort_statistics(cohort_scores, top_k if method == "asnorm" else None)
    return normalise(scores, enrol_index, test_index, mean, std)


def read_cohort_list(cohort_list, cohort_path):
    """Cohort files relative to cohort_path: one path per line, or a train list's `speaker path`."""
    return read_path_list(cohort_list, cohort_path, "--cohort_path", "cohort list", min_files=2)


def check_settings(method, cohort_list, cohort_path, top_k):
    """Before the evaluation, which can take long: the flags and the cohort files."""
    if method not in METHODS:
        raise InputError("--score_norm %s: use none, %s" % (method, ", ".join(METHODS)))
    if not cohort_list:
        raise InputError("--score_norm %s needs --cohort_list (e.g. the train list) and --cohort_path" % method)
    if method == "asnorm" and top_k < 2:
        raise InputError("--top_k %d: AS-norm needs at least 2 cohort scores per side" % top_k)
    read_cohort_list(cohort_list, cohort_path)


def cohort_cache_file(checkpoint, cohort_path, names, embedding_setup):
    """`<checkpoint>.cohort-<key>.npz`, the key covering the checkpoint's bytes, the cohort files
    (name, size, mtime) and `embedding_setup` (model flags and crops)."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    files = []
    for name in names:
        stat = os.stat(os.path.join(cohort_path, name))
        files.append([name, stat.st_size, stat.st_mtime_ns])
    setup = dict(embedding_setup, cohort_path=os.path.abspath(cohort_path), files=files)
    digest.update(json.dumps(setup, sort_keys=True).encode())
    return "%s.cohort-%s.npz" % (os.path.splitext(checkpoint)[0], digest.hexdigest()[:16])


def cohort_embeddings(net, checkpoint, cohort_list, cohort_path, eval_frames, num_workers, embedding_setup):
    """(cohort files, embeddings (files, crops, nOut)) of the cohort list, from the cache when there."""
    import torch
    names = read_cohort_list(cohort_list, cohort_path)
    cache = cohort_cache_file(checkpoint, cohort_path, names, dict(embedding_setup, eval_frames=eval_frames))
    if os.path.isfile(cache):
        with numpy.load(cache, allow_pickle=False) as cached:
            log.info("Cohort embeddings read from %s" % cache)
            return names, torch.from_numpy(cached["embeddings"])
    embeddings = net.embed_files([os.path.join(cohort_path, name) for name in names], eval_frames,
                                 num_workers=num_workers)
    try:
        save_npz(cache, embeddings=embeddings.numpy(), files=numpy.array(names))
        log.info("Cohort embeddings cached in %s" % cache)
    except OSError as error:
        # A read-only model folder only costs recomputing the cohort next time.
        log.warning("cannot cache the cohort embeddings beside %s (%s)" % (checkpoint, error.strerror))
    return names, embeddings


def describe(method, top_k, cohort_size):
    """The prefix of the normalised EER line, e.g. 'AS-norm (top 300 of 5994 cohort files): '."""
    kept = "top %d of " % min(top_k, cohort_size) if method == "asnorm" else ""
    return "%s (%s%d cohort files): " % (METHODS[method], kept, cohort_size)
