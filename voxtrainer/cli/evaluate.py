"""--eval: score --test_list with a checkpoint, print and write the EER and minDCF, and on request
the cohort-normalised scores and the calibration (--calibrate)."""

from voxtrainer import log
from voxtrainer.errors import InputError
from voxtrainer.experiment import ExperimentFolder


def eval_mode(args, net, dist_env):
    from voxtrainer.scoring import score_norm
    from voxtrainer.scoring.evaluation import (evaluate_list, read_score_mean, report, scoring_description,
                                               scoring_embeddings)
    folder = ExperimentFolder(args.save_path)
    source = args.initial_model or folder.newest_model()
    if not source:
        raise InputError("--eval needs --initial_model (or a trained model in %s)" % folder.model_dir)
    if dist_env.is_main:
        folder.prepare(subfolders=("result",))
    net.loadParameters(source)
    log.info("Model %s loaded!" % source)
    if args.score_norm != "none":
        score_norm.check_settings(args.score_norm, args.cohort_list, args.cohort_path, args.top_k)
    score_mean = read_score_mean(args.score_mean_from) if args.score_mean_from else None
    if score_mean is not None and score_mean.shape[0] != args.nOut:
        raise InputError("--score_mean_from %s: a mean of %d values for embeddings of --nOut %d" % (
            args.score_mean_from, score_mean.shape[0], args.nOut))
    result = evaluate_list(net, args.test_list, args.test_path, args.eval_frames, num_workers=args.nDataLoaderThread,
                           score_mean=score_mean)
    if not dist_env.is_main:
        return  # --distributed --eval: every rank embedded a shard of the files; rank 0 reports
    result_dir = folder.result_dir
    report(result.scores, result.labels, result.trials, result_dir, "eval_scores.txt", "eval")
    report_calibration(args, source, result, scoring_description(net, args.score_mean_from))
    if args.score_norm != "none":
        setup = {"model": args.model, "encoder_type": args.encoder_type, "nOut": args.nOut, "trainfunc": args.trainfunc,
                 "n_mels": args.n_mels, "log_input": args.log_input, "protocol": net.protocol}
        names, cohort = score_norm.cohort_embeddings(net, source, args.cohort_list, args.cohort_path,
                                                     args.eval_frames, args.nDataLoaderThread, setup)
        cohort = scoring_embeddings(net, cohort, score_mean)  # scored as the trials are
        normalised = score_norm.normalise_trials(args.score_norm, result.scores, result.trials, result.files,
                                                 result.embeddings, cohort, args.top_k)
        report(normalised, result.labels, result.trials, result_dir, "eval_scores_%s.txt" % args.score_norm,
               "eval_" + args.score_norm, eer_prefix=score_norm.describe(args.score_norm, args.top_k, len(names)))


def report_calibration(args, source, result, scoring):
    """--eval --calibrate: fit and write the calibration of these scores (the raw ones, before any
    --score_norm), print its Cllr and min-Cllr. Without --calibrate, a calibration already beside
    the model is applied to this list (a held-out check of it) when it is of this model."""
    from voxtrainer import log
    from voxtrainer.scoring import calibration
    if args.calibrate:
        fitted, summary = calibration.fit_calibration(result.scores, result.labels, source, args.test_list,
                                                      args.test_path, args.eval_frames, scoring)
        log.info("Calibration written to %s: llr = %.6g * score + %.6g" % (fitted.path, fitted.a, fitted.b))
        for point in summary["thresholds"]:
            if point["score"] is None:
                log.info("Threshold at %g%% false accept: none (too few non-target trials)" % (
                    point["false_accept_percent"]))
                continue
            log.info("Threshold at %g%% false accept: score %.6g (llr %.4f; false reject %.2f%%)" % (
                point["false_accept_percent"], point["score"], point["llr"], point["false_reject_percent"]))
        log.info(calibration.cllr_line(summary["cllr"], summary["min_cllr"], fitted.path))
        return
    try:
        existing = calibration.read_calibration(source, args.eval_frames, scoring)
    except InputError as error:
        log.warning("%s; no Cllr printed" % error.line)
        return
    if existing is not None:
        log.info(calibration.cllr_line(*calibration.costs(result.scores, result.labels, existing), existing.path))
