"""--verify A B / --verify_list FILE: pairs scored as --eval scores trials, with the calibration
beside the model when there is one."""

import os

from voxtrainer import log
from voxtrainer.errors import InputError
from voxtrainer.experiment import ExperimentFolder


def verify_mode(args, net, dist_env):
    """--verify A B / --verify_list FILE: score pairs as --eval scores trials, and with the
    calibration beside --initial_model, their llr, probability of the same speaker and decision."""
    from voxtrainer.scoring.calibration import read_calibration
    from voxtrainer.scoring.evaluation import read_score_mean, scoring_description, verify_pairs, write_verdicts
    from voxtrainer.reading.lists import read_pair_list
    flag = "--verify" if args.verify else "--verify_list"
    if not args.initial_model:
        raise InputError("%s needs --initial_model (the model to score with)" % flag)
    if not 0 < args.prior < 1:
        raise InputError("--prior %g: the prior probability of the same speaker must be strictly between 0 and 1"
                         % args.prior)
    if args.verify:
        from voxtrainer.reading.audio import audio_info
        for path in args.verify:
            if not os.path.isfile(path):
                raise InputError("%s: audio file not found (--verify)" % path)
            audio_info(path)  # InputError naming the file when it is not 16 kHz mono audio
        pairs = [tuple(args.verify)]
    else:
        pairs = read_pair_list(args.verify_list, args.test_path)
    calibration = read_calibration(args.initial_model, args.eval_frames,
                                   scoring_description(net, args.score_mean_from))
    net.loadParameters(args.initial_model)
    log.info("Model %s loaded!" % args.initial_model)
    score_mean = read_score_mean(args.score_mean_from) if args.score_mean_from else None
    verdicts = verify_pairs(net, pairs, args.eval_frames, calibration, args.prior, args.nDataLoaderThread,
                            score_mean)
    if not dist_env.is_main:
        return
    if calibration is None:
        log.info("No calibration beside %s: scores only (--eval --calibrate writes one, for llrs, probabilities "
                 "and decisions)" % args.initial_model)
    for verdict in verdicts:
        log.info(verdict.line())
    if args.verify_list:
        folder = ExperimentFolder(args.save_path)
        folder.prepare(subfolders=("result",))
        out = folder.result("verify_results.txt")
        write_verdicts(out, verdicts)
        log.info("Wrote %d results to %s" % (len(verdicts), out))
