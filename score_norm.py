"""Cohort score normalisation of verification trials: symmetric (S-norm) and adaptive symmetric
(AS-norm, Matejka et al., Interspeech 2017).

With s the raw score of trial (enrol e, test t) and the scores of e and of t against every cohort
file scored the same way as trials:

    s_norm = ((s - mean_e) / std_e + (s - mean_t) / std_t) / 2

S-norm takes mean and standard deviation (population, ddof=0) over the whole cohort, AS-norm over
each side's top_k highest cohort scores. Cohort embeddings depend only on the checkpoint, the
cohort files and the crops, so they are cached beside the checkpoint."""

import hashlib
import json
import os

import numpy
import torch

from DatasetLoader import InputError, check_files_exist, read_list
from SpeakerNet import atomic_output
from tuneThreshold import minDCF, tuneThresholdfromScore

METHODS = {"snorm": "S-norm", "asnorm": "AS-norm"}
BLOCK_ENTRIES = 1 << 24  # distance-matrix entries per block: bounds the memory of cohort scoring


def crop_set_scores(first, second):
    """The trainer's trial score for every pair of files: -mean over crop pairs of ||a - b + 1e-6||.

    first (F, crops, dim), second (C, crops, dim) -> numpy (F, C)."""
    first, second = torch.as_tensor(first, dtype=torch.float32), torch.as_tensor(second, dtype=torch.float32)
    files, crops, dim = first.shape
    cohort, cohort_crops = second.shape[:2]
    flat_cohort = second.reshape(-1, dim)
    per_block = max(1, BLOCK_ENTRIES // max(1, crops * cohort * cohort_crops))
    blocks = []
    for start in range(0, files, per_block):
        block = first[start:start + per_block]
        distances = torch.cdist(block.reshape(-1, dim) + 1e-6, flat_cohort)
        blocks.append(-distances.reshape(block.shape[0], crops, cohort, cohort_crops).mean(dim=(1, 3)))
    return torch.cat(blocks).double().numpy() if blocks else numpy.zeros((0, cohort))


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
    """Normalised scores of `trials` ('enrol test' strings, as evaluateFromList returns them)."""
    index = {name: position for position, name in enumerate(test_files)}
    pairs = [trial.split() for trial in trials]
    enrol_index = numpy.array([index[enrol] for enrol, _ in pairs], dtype=numpy.int64)
    test_index = numpy.array([index[test] for _, test in pairs], dtype=numpy.int64)
    mean, std = cohort_statistics(crop_set_scores(test_embeddings, cohort_embeddings),
                                  top_k if method == "asnorm" else None)
    return normalise(scores, enrol_index, test_index, mean, std)


# ---------------------------------------------------------------------------------------------
# The cohort

def read_cohort_list(cohort_list, cohort_path):
    """Cohort files relative to cohort_path: one path per line, or a train list's `speaker path`."""
    rows = read_list(cohort_list, fields=(1, 2), what="cohort list")
    names = [parts[-1] for _, parts in rows]
    check_files_exist([(number, os.path.join(cohort_path, name)) for (number, _), name in zip(rows, names)],
                      cohort_list, "--cohort_path")
    if len(names) < 2:
        raise InputError("%s: a cohort needs at least 2 files, found %d" % (cohort_list, len(names)))
    return names


def cohort_cache_file(checkpoint, names, args):
    """`<checkpoint>.cohort-<key>.npz`, the key covering everything the embeddings depend on."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    files = []
    for name in names:
        stat = os.stat(os.path.join(args.cohort_path, name))
        files.append([name, stat.st_size, stat.st_mtime_ns])
    setup = {"model": args.model, "encoder_type": args.encoder_type, "nOut": args.nOut,
             "trainfunc": args.trainfunc, "eval_frames": args.eval_frames,
             "cohort_path": os.path.abspath(args.cohort_path), "files": files}
    digest.update(json.dumps(setup, sort_keys=True).encode())
    return "%s.cohort-%s.npz" % (os.path.splitext(checkpoint)[0], digest.hexdigest()[:16])


def cohort_embeddings(net, args, checkpoint, progress=True):
    """(cohort files, embeddings (files, crops, nOut)) of --cohort_list, from the cache when there."""
    names = read_cohort_list(args.cohort_list, args.cohort_path)
    cache = cohort_cache_file(checkpoint, names, args)
    if os.path.isfile(cache):
        with numpy.load(cache, allow_pickle=False) as cached:
            print("Cohort embeddings read from %s" % cache)
            return names, torch.from_numpy(cached["embeddings"])
    embeddings = net.embed_files([os.path.join(args.cohort_path, name) for name in names], args.eval_frames,
                                 num_workers=args.nDataLoaderThread, progress=progress)
    try:
        with atomic_output(cache) as temporary, open(temporary, "wb") as handle:
            numpy.savez(handle, embeddings=embeddings.numpy(), files=numpy.array(names))
        print("Cohort embeddings cached in %s" % cache)
    except OSError as error:
        # A read-only model folder only costs recomputing the cohort next time.
        print("WARNING: cannot cache the cohort embeddings beside %s (%s)" % (checkpoint, error.strerror))
    return names, embeddings


def check_score_norm_args(args):
    """Before the evaluation, which can take long: the flags and the cohort files."""
    if args.score_norm == "none":
        return
    if args.score_norm not in METHODS:
        raise InputError("--score_norm %s: use none, %s" % (args.score_norm, ", ".join(METHODS)))
    if not args.cohort_list:
        raise InputError("--score_norm %s needs --cohort_list (e.g. the train list) and --cohort_path" %
                         args.score_norm)
    if args.score_norm == "asnorm" and args.top_k < 2:
        raise InputError("--top_k %d: AS-norm needs at least 2 cohort scores per side" % args.top_k)
    read_cohort_list(args.cohort_list, args.cohort_path)


def report_normalised(net, args, checkpoint, scores, labels, trials, test_files, test_embeddings, result_dir):
    """Print the EER and minDCF after --score_norm, write its scores; returns the normalised scores."""
    names, cohort = cohort_embeddings(net, args, checkpoint)
    normalised = normalise_trials(args.score_norm, scores, trials, test_files, test_embeddings, cohort, args.top_k)
    eer = tuneThresholdfromScore(normalised, labels, [1, 0.1])[1]
    kept = "top %d of " % min(args.top_k, len(names)) if args.score_norm == "asnorm" else ""
    print("%s (%s%d cohort files): EER %2.4f, MinDCF %.4f (p_target 0.05), %.4f (p_target 0.01)" % (
        METHODS[args.score_norm], kept, len(names), eer, minDCF(normalised, labels, 0.05),
        minDCF(normalised, labels, 0.01)))
    with open(os.path.join(result_dir, "eval_scores_%s.txt" % args.score_norm), "w") as handle:
        for score, label, trial in zip(normalised, labels, trials):
            handle.write("%.6f %d %s\n" % (score, label, trial))
    return normalised
