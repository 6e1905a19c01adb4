#!/usr/bin/env python
"""Train a speaker-embedding network on VoxCeleb, or score a verification list (--eval), extract
embeddings (--extract), export the network (--export), average saved models (--average_last).

Flags and outputs follow the 2020 voxceleb_trainer (README.md); the work is done by the
voxtrainer package: this file is the command line and its table of modes."""

import argparse
import os
import signal
import sys

from voxtrainer import runtime  # first: it sets process settings that must precede torch
from voxtrainer.config import OneLineParser, read_config, real_number, save_config, truth_value, whole_number
from voxtrainer.errors import InputError, run_command
from voxtrainer.precision import add_speed_flags, fused_optimizer, speed_settings
from voxtrainer.score_norm import METHODS as SCORE_NORMS

DEFAULT_NCLASSES = 5994  # VoxCeleb2 dev speakers: the seed's --nSpeakers default
DEFAULT_NPERSPEAKER = 2


def build_parser():
    parser = OneLineParser(description="SpeakerNet: train speaker embeddings, score verification trials",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", type=str, default=None, help="YAML file of flag values; the command line wins")

    data = parser.add_argument_group("data")
    data.add_argument("--max_frames", type=whole_number(0), default=200, help="Frames (10 ms) per training crop")
    data.add_argument("--eval_frames", type=whole_number(0), default=None,
                      help="Frames per evaluation crop, 0 = whole file (default: --max_frames, as the seed)")
    data.add_argument("--batch_size", type=whole_number(1), default=200, help="Speakers (groups) per batch")
    data.add_argument("--max_seg_per_spk", type=whole_number(1), default=100, help="Maximum utterances per speaker per epoch")
    data.add_argument("--nDataLoaderThread", type=whole_number(0), default=5, help="Audio-loading worker processes")
    data.add_argument("--train_list", type=str, default="", help="Train list: 'speaker path' per line")
    data.add_argument("--test_list", type=str, default="", help="Test list: 'label enrol test' per line")
    data.add_argument("--train_path", type=str, default="voxceleb2", help="Root of the train list's paths")
    data.add_argument("--test_path", type=str, default="voxceleb1", help="Root of the test list's paths")

    train = parser.add_argument_group("training")
    train.add_argument("--test_interval", type=whole_number(1), default=10, help="Evaluate, decay the LR and save every N epochs")
    train.add_argument("--max_epoch", type=whole_number(0), default=500, help="Last epoch")
    train.add_argument("--trainfunc", type=str, default="", help="Loss: a module name in loss/")
    train.add_argument("--optimizer", type=str, default="adam", help="Optimizer: a module name in optimizer/")
    train.add_argument("--scheduler", type=str, default="steplr", help="LR schedule: a module name in scheduler/")
    train.add_argument("--lr", type=real_number(0), default=0.001, help="Learning rate")
    train.add_argument("--lr_decay", type=real_number(0), default=0.95, help="LR factor every --test_interval epochs")
    train.add_argument("--weight_decay", type=real_number(0), default=None, help="Weight decay (default: the optimizer's)")
    train.add_argument("--hard_prob", type=real_number(0, 1), default=0.5, help="Hard negative probability (triplet/contrastive)")
    train.add_argument("--hard_rank", type=whole_number(), default=10, help="Hard negative rank (triplet/contrastive)")
    train.add_argument("--margin", type=real_number(), default=1, help="Loss margin")
    train.add_argument("--scale", type=real_number(), default=15, help="Loss scale (AM/AAM-softmax)")
    train.add_argument("--nSpeakers", type=whole_number(1), default=None,
                       help="As the seed: softmax classes for softmax-family losses (default %d), utterances "
                            "per speaker per batch for metric losses (default %d)" % (DEFAULT_NCLASSES,
                                                                                      DEFAULT_NPERSPEAKER))
    train.add_argument("--nClasses", type=whole_number(1), default=None, help="Softmax classes (wins over --nSpeakers)")
    train.add_argument("--nPerSpeaker", type=whole_number(1), default=None,
                       help="Utterances per speaker per batch for metric losses (wins over --nSpeakers)")
    train.add_argument("--seed", type=whole_number(0), default=0, help="Seed of weights, sampling and crops")
    train.add_argument("--mixedprec", action="store_true", help="fp16 autocast on CUDA, bf16 on CPU")
    train.add_argument("--distributed", action="store_true", help="DistributedDataParallel under torchrun")
    train.add_argument("--eval_untrained", action="store_true",
                       help="Also evaluate the model before the first epoch, to compare with the trained EER")

    io = parser.add_argument_group("models and outputs")
    io.add_argument("--initial_model", type=str, default="",
                    help="Weights to start from / to evaluate: a file, or an http(s) URL downloaded once into "
                         "--model_cache")
    io.add_argument("--save_path", type=str, default="data/exp1", help="Folder for models and results")
    io.add_argument("--eval", dest="eval", action="store_true", help="Only score --test_list and print the EER")
    io.add_argument("--device", type=str, default="auto", choices=["auto", "cpu", "cuda"], help="Compute device")

    model = parser.add_argument_group("model")
    model.add_argument("--model", type=str, default="", help="Network: a module name in models/")
    model.add_argument("--encoder_type", "--encoder", dest="encoder_type", type=str, default="SAP",
                       help="Temporal pooling: SAP, TAP, MAX or ASP (ResNetSE34V2: SAP or ASP; WeSpeaker models: their own)")
    model.add_argument("--nOut", type=whole_number(1), default=None,
                       help="Embedding size (default: the model's own, e.g. 256 for ResNet34, else 512)")

    trainer2021 = parser.add_argument_group("2021 trainer")
    trainer2021.add_argument("--n_mels", type=whole_number(8), default=40,
                             help="Mel bands of the log-mel front end (ResNetSE34L, ResNetSE34V2)")
    trainer2021.add_argument("--log_input", type=truth_value, nargs="?", const=True, default=True,
                             help="Take the log of the mel bands: bare --log_input or --log_input True/False")
    trainer2021.add_argument("--protocol", type=str, default=None, choices=["2020", "2021"],
                             help="Audio protocol for training, evaluation and extraction: 2020 int16 values "
                                  "and zero padding, 2021 floats and wrap padding (default: the model's, "
                                  "2021 for ResNetSE34V2, else 2020)")

    recipes = parser.add_argument_group("training data (recipes; all off by default)")
    recipes.add_argument("--speed_perturb", action="store_true",
                         help="Play each training group at 0.9, 1.0 or 1.1 times its speed, each speed of a speaker "
                              "its own class (WeSpeaker's): softmax-family heads get 3 x --nClasses classes")
    recipes.add_argument("--dither", type=real_number(0), default=0.0,
                         help="Add Gaussian noise of this amplitude (int16 units, Kaldi's dither; WeSpeaker trains "
                              "with 1.0) to every training crop; evaluation is never dithered")
    recipes.add_argument("--min_train_seconds", type=real_number(0), default=None,
                         help="Leave train-list utterances shorter than this out (WeSpeaker's recipe: 1.0)")
    recipes.add_argument("--max_train_seconds", type=real_number(0), default=None,
                         help="Leave train-list utterances longer than this out")
    recipes.add_argument("--short_crop_padding", type=str, default=None, choices=["zero", "repeat"],
                         help="Fill training crops of files shorter than a crop with zeros on both sides or by "
                              "repeating the file from its start, as WeSpeaker (default: the protocol's, zero "
                              "for 2020, repeat for 2021)")

    own = parser.add_argument_group("your own data (dataprep.py --make_lists --from_folder writes the lists)")
    own.add_argument("--model_cache", type=str, default="",
                     help="Folder for --initial_model URLs' downloads (default: $XDG_CACHE_HOME/voxtrainer, "
                          "else ~/.cache/voxtrainer)")
    own.add_argument("--initial_model_sha256", type=str, default="",
                     help="sha256 that --initial_model must have (a mismatching download is removed)")

    extra = parser.add_argument_group("beyond the original (all off by default)")
    extra.add_argument("--compile", action="store_true",
                       help="Train through torch.compile: a slow first step, then faster steps whose rounding "
                            "differs from eager; eager again, with a warning, where compilation fails")
    extra.add_argument("--augment", action="store_true",
                       help="Augment each training crop with MUSAN noise, babble or music, or a simulated RIR")
    extra.add_argument("--musan_path", type=str, default="data/musan_split",
                       help="MUSAN in 5 s pieces (noise/, speech/, music/), as dataprep.py --augment writes it")
    extra.add_argument("--rir_path", type=str, default="data/RIRS_NOISES/simulated_rirs",
                       help="Simulated room impulse responses, as dataprep.py --augment writes them")
    extra.add_argument("--extract", action="store_true",
                       help="Only write one embedding per file of --extract_list to --extract_out")
    extra.add_argument("--extract_list", type=str, default="",
                       help="Audio files to embed: one path per line, relative to --test_path")
    extra.add_argument("--extract_out", type=str, default="", help=".npz file that --extract writes")
    extra.add_argument("--extract_crops", action="store_true",
                       help="--extract also stores every eval crop's embedding")
    extra.add_argument("--score_norm", type=str, default="none", choices=["none"] + sorted(SCORE_NORMS),
                       help="--eval also prints the EER after cohort score normalisation")
    extra.add_argument("--cohort_list", type=str, default="",
                       help="Score-norm cohort: one path per line (or a train list), relative to --cohort_path")
    extra.add_argument("--cohort_path", type=str, default="", help="Root of the cohort list's paths")
    extra.add_argument("--top_k", type=whole_number(1), default=300, help="AS-norm: highest cohort scores kept per side")
    extra.add_argument("--export", type=str, default=None, metavar="{onnx,torchscript}",
                       help="Only write the embedding network of --initial_model to --export_out, as ONNX or "
                            "TorchScript (voxtrainer.export.FORMATS)")
    extra.add_argument("--export_out", type=str, default="", help="File that --export writes")
    extra.add_argument("--average_last", type=whole_number(), default=0,
                       help="Only average the last N models of --save_path/model into one .model")

    tuning = parser.add_argument_group("fine-tuning, calibration, verification (all off by default)")
    tuning.add_argument("--finetune", action="store_true",
                        help="Train from --initial_model's embedding network under a new loss head sized for this "
                             "data (any --trainfunc; --nClasses defaults to the train list's speakers)")
    tuning.add_argument("--freeze_epochs", type=whole_number(0), default=0,
                        help="With --finetune: the embedding network's weights and BatchNorm statistics stay fixed "
                             "for the first N epochs, while the new head trains")
    tuning.add_argument("--calibrate", action="store_true",
                        help="--eval also fits score-to-log-likelihood-ratio calibration on the list, writes it "
                             "beside the model (<model>.calibration.json) and prints Cllr and min-Cllr")
    tuning.add_argument("--verify", type=str, nargs=2, metavar=("A.wav", "B.wav"), default=None,
                        help="Only score one pair of audio files with --initial_model (and its calibration, if any)")
    tuning.add_argument("--verify_list", type=str, default="",
                        help="Only score each 'A B' line of this file (paths relative to --test_path), writing "
                             "--save_path/result/verify_results.txt")
    tuning.add_argument("--prior", type=real_number(0, 1), default=0.5,
                        help="Prior probability of the same speaker, for --verify's calibrated probability and "
                             "decision (strictly between 0 and 1)")

    modern = parser.add_argument_group("modern recipes (WeSpeaker's losses and schedules; all off by default)")
    modern.add_argument("--margin_start_epoch", type=whole_number(0), default=0,
                        help="Margin schedule (aamsoftmax, amsoftmax): --initial_margin until this epoch, rising "
                             "to --margin by --margin_end_epoch, set before every step; 0 = off (fixed --margin)")
    modern.add_argument("--margin_end_epoch", type=whole_number(1), default=None,
                        help="First epoch at the full --margin (needed with --margin_start_epoch)")
    modern.add_argument("--initial_margin", type=real_number(), default=0.0, help="Margin before the schedule rises")
    modern.add_argument("--margin_rise", type=str, default="exp", choices=["exp", "linear"],
                        help="Shape of the margin's rise: WeSpeaker's exponential (fast, then levelling off) or linear")
    modern.add_argument("--subcenters", type=whole_number(1), default=1,
                        help="aamsoftmax: centres per class, a class's cosine being its closest centre's")
    modern.add_argument("--intertopk", type=whole_number(0), default=0,
                        help="aamsoftmax: the K hardest negative classes get the penalty cos(theta - "
                             "--intertopk_margin); 0 = off")
    modern.add_argument("--intertopk_margin", type=real_number(0), default=0.06,
                        help="Inter-top-k margin at the full --margin (scaled with the margin in force)")
    modern.add_argument("--final_lr", type=real_number(0), default=5e-5,
                        help="--scheduler warmup_exp: LR after --max_epoch epochs (decaying exponentially from --lr)")
    modern.add_argument("--warmup_epochs", type=real_number(0), default=0,
                        help="--scheduler warmup_exp: epochs of linear warm-up from LR 0")
    modern.add_argument("--lr_reference_batch", type=whole_number(0), default=0,
                        help="--scheduler warmup_exp: scale the LR by GPUs x utterances per batch / this, as "
                             "WeSpeaker does with 64; 0 = off")
    modern.add_argument("--momentum", type=real_number(0), default=None,
                        help="--optimizer sgd: momentum (default: the original's 0.9)")
    modern.add_argument("--nesterov", action="store_true", help="--optimizer sgd: Nesterov momentum")

    wespeaker = parser.add_argument_group("WeSpeaker models (ResNet34, ECAPA_TDNN, ...; --initial_model takes their .pt)")
    wespeaker.add_argument("--channels", type=whole_number(8), default=512, help="ECAPA_TDNN channels: 512 or 1024")
    wespeaker.add_argument("--variant", type=str, default=None,
                           help="the size of a model family (ERes2Net, ReDimNet2); default: the model's own")
    wespeaker.add_argument("--score_mean_from", type=str, default="",
                           help="--eval scores by cosine after subtracting this mean embedding, as WeSpeaker: an "
                                ".npz from --extract (e.g. of the training set) or a .npy vector")
    extra.add_argument("--eval_precision", type=str, default="fp32", choices=["fp32", "bf16", "fp16"],
                       help="Precision of every embedding (evaluation, validation, --extract, cohorts): bf16 "
                            "autocast is faster where native (AVX-512 BF16/AMX CPUs, recent GPUs; refused "
                            "elsewhere) but changes the scores; fp16 autocast: CUDA only")
    add_speed_flags(parser)
    return parser


def parse_args(argv=None):
    parser = build_parser()
    early, _ = parser.parse_known_args(argv)
    if early.config:
        parser.set_defaults(**read_config(early.config, parser))
    args = parser.parse_args(argv)
    if args.eval_frames is None:
        args.eval_frames = args.max_frames
    if args.nOut is None:
        args.nOut = default_nOut(args.model)
    return args


def default_nOut(model):
    """The model's own embedding size where it declares one (WeSpeaker's models), else the seed's 512."""
    if not model:
        return 512
    from voxtrainer.plugins import load_plugin
    return getattr(load_plugin("models", model), "default_nOut", 512)


def head_classes(nClasses, speed_perturb):
    """Classes of the loss head: --speed_perturb gives each speed of a speaker its own class."""
    if not speed_perturb:
        return nClasses
    from voxtrainer.perturb import speed_perturbed_classes
    return speed_perturbed_classes(nClasses)


def resolve_group_sizes(args, loss_class):
    """(softmax classes, utterances per speaker per batch) from the seed's overloaded --nSpeakers."""
    nClasses = args.nClasses or args.nSpeakers or DEFAULT_NCLASSES
    fixed = getattr(loss_class, "utterances_per_speaker", None)
    nPerSpeaker = fixed or args.nPerSpeaker or args.nSpeakers or DEFAULT_NPERSPEAKER
    return nClasses, nPerSpeaker


# ---------------------------------------------------------------------------------------------
# The modes

def resolve_initial_model(args, dist_env):
    """--initial_model as a local file (an http(s) URL downloaded into the cache; see voxtrainer.remote).
    Under --distributed the first process of each machine fetches it while the others wait, then
    find it cached."""
    from voxtrainer.remote import is_url, local_model
    if args.initial_model_sha256 and not args.initial_model:
        raise InputError("--initial_model_sha256 checks --initial_model: give the model too")
    if not (args.initial_model and (is_url(args.initial_model) or args.initial_model_sha256)):
        return args.initial_model

    def fetch():
        return local_model(args.initial_model, args.model_cache, args.initial_model_sha256)
    if not dist_env.enabled:
        return fetch()
    import torch.distributed
    first = dist_env.local_rank == 0
    path = fetch() if first else None
    torch.distributed.barrier()
    return path if first else fetch()


def average_mode(args):
    from voxtrainer.checkpoints import average_last
    average_last(args.save_path, args.average_last)


def eval_mode(args, net, dist_env):
    from voxtrainer import log, score_norm
    from voxtrainer.checkpoints import model_paths
    from voxtrainer.evaluation import evaluate_list, read_score_mean, report, scoring_description, scoring_embeddings
    from voxtrainer.experiment import prepare_folder
    source = args.initial_model or (model_paths(args.save_path) or [""])[-1]
    if not source:
        raise InputError("--eval needs --initial_model (or a trained model in %s/model)" % args.save_path)
    if dist_env.is_main:
        prepare_folder(args.save_path, subfolders=("result",))
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
    result_dir = os.path.join(args.save_path, "result")
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
    from voxtrainer import calibration, log
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


def verify_mode(args, net, dist_env):
    """--verify A B / --verify_list FILE: score pairs as --eval scores trials, and with the
    calibration beside --initial_model, their llr, probability of the same speaker and decision."""
    from voxtrainer import log
    from voxtrainer.calibration import read_calibration
    from voxtrainer.evaluation import read_score_mean, scoring_description, verify_pairs, write_verdicts
    from voxtrainer.experiment import prepare_folder
    from voxtrainer.lists import read_pair_list
    flag = "--verify" if args.verify else "--verify_list"
    if not args.initial_model:
        raise InputError("%s needs --initial_model (the model to score with)" % flag)
    if not 0 < args.prior < 1:
        raise InputError("--prior %g: the prior probability of the same speaker must be strictly between 0 and 1"
                         % args.prior)
    if args.verify:
        from voxtrainer.audio import audio_info
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
        prepare_folder(args.save_path, subfolders=("result",))
        out = os.path.join(args.save_path, "result", "verify_results.txt")
        write_verdicts(out, verdicts)
        log.info("Wrote %d results to %s" % (len(verdicts), out))


def extract_mode(args, net, dist_env):
    from voxtrainer.embeddings import extract_embeddings
    for flag, value in (("--initial_model", args.initial_model), ("--extract_list", args.extract_list),
                        ("--extract_out", args.extract_out)):
        if not value:
            raise InputError("--extract needs %s" % flag)
    extract_embeddings(net, args.initial_model, args.extract_list, args.test_path, args.eval_frames,
                       args.extract_out, args.extract_crops, args.nDataLoaderThread)


def export_mode(args, net, dist_env):
    from voxtrainer.export import export_checkpoint
    if not args.initial_model:
        raise InputError("--export needs --initial_model (the checkpoint to export)")
    if not args.export_out:
        raise InputError("--export needs --export_out FILE (e.g. model.onnx or model.pt)")
    export_checkpoint(net, args.initial_model, args.export, args.export_out)


def train_mode(args, net, dist_env, nClasses, nPerSpeaker, device, speed):
    import torch
    from voxtrainer import log
    from voxtrainer.audio import check_padding
    from voxtrainer.datasets import make_train_loader
    from voxtrainer.evaluation import evaluate_list
    from voxtrainer.experiment import exclusive_run, prepare_folder
    from voxtrainer.lists import TestList, TrainList, leakage_warning, leave_out_by_duration
    from voxtrainer.plugins import load_plugin
    from voxtrainer.training import Run, train
    # Everything that can be checked is checked here, before the first epoch.
    if not args.train_list or not args.test_list:
        raise InputError("training needs --train_list and --test_list (or --eval to only score a list)")
    if args.finetune and not args.initial_model:
        raise InputError("--finetune needs --initial_model (the model whose embedding network is fine-tuned)")
    if args.freeze_epochs and args.distributed:
        raise InputError("--freeze_epochs is not available with --distributed (DistributedDataParallel expects "
                         "every parameter it was given to receive a gradient)")
    if args.max_frames < 1:
        raise InputError("--max_frames %d: a training crop needs at least 1 frame" % args.max_frames)
    check_padding(args.short_crop_padding, net.protocol)
    train_list = TrainList(args.train_list, args.train_path)
    if args.min_train_seconds is not None or args.max_train_seconds is not None:
        train_list, note = leave_out_by_duration(train_list, args.min_train_seconds, args.max_train_seconds,
                                                 progress=dist_env.is_main)
        log.info(note)  # before a possible error about speakers the filter left with too few utterances
    test_list = TestList(args.test_list, args.test_path)
    test_list.check_audio()
    leakage = leakage_warning(train_list, test_list)
    loss_class = load_plugin("loss", args.trainfunc)
    if loss_class.classifies_speakers and nClasses < train_list.num_speakers:
        raise InputError("--nClasses %d: %s has %d speakers, and --trainfunc %s needs a class for each (the seed "
                         "sets it with --nSpeakers)" % (nClasses, args.train_list, train_list.num_speakers,
                                                       args.trainfunc))
    modern_options("loss", args.trainfunc, subcenters=None if args.subcenters == 1 else args.subcenters,
                   intertopk=args.intertopk or None)
    augment = None
    if args.augment:
        from voxtrainer.augment import Augmenter
        augment = Augmenter(args.musan_path, args.rir_path)
    optimizer_options = modern_options("optimizer", args.optimizer, momentum=args.momentum,
                                       nesterov=args.nesterov or None)
    if fused_optimizer(speed.precision, device.type) and args.optimizer in ("adam", "sgd"):
        optimizer_options["fused"] = True
    optimizer = load_plugin("optimizer", args.optimizer)(net.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                                         **optimizer_options)
    lr_scale = 1.0
    if args.lr_reference_batch:
        modern_options("scheduler", args.scheduler, lr_scale=True)
        lr_scale = dist_env.world_size * args.batch_size * nPerSpeaker / args.lr_reference_batch
    scheduler = load_plugin("scheduler", args.scheduler)(optimizer, test_interval=args.test_interval,
                                                         lr_decay=args.lr_decay, lr=args.lr, final_lr=args.final_lr,
                                                         warmup_epochs=args.warmup_epochs, max_epoch=args.max_epoch,
                                                         lr_scale=lr_scale)
    margin_schedule = None
    if args.margin_end_epoch is not None and not args.margin_start_epoch:
        raise InputError("--margin_end_epoch needs --margin_start_epoch (the epoch the margin starts rising)")
    if args.margin_start_epoch:
        from voxtrainer.schedules import MarginSchedule
        if args.margin_end_epoch is None:
            raise InputError("--margin_start_epoch needs --margin_end_epoch (the first epoch at the full --margin)")
        margin_schedule = MarginSchedule(net.__L__, args.initial_margin, args.margin, args.margin_start_epoch,
                                         args.margin_end_epoch, args.margin_rise)
    loader, sampler = make_train_loader(train_list, args.max_frames, nPerSpeaker, args.max_seg_per_spk,
                                        args.batch_size, args.nDataLoaderThread, args.seed,
                                        num_replicas=dist_env.world_size, rank=dist_env.rank, augment=augment,
                                        protocol=net.protocol, padding=args.short_crop_padding,
                                        speed_perturb=args.speed_perturb, num_classes=nClasses, dither=args.dither)
    scaler = torch.amp.GradScaler(device.type, enabled=speed.precision.loss_scaling)
    identity = {"model": args.model, "encoder_type": args.encoder_type, "nOut": args.nOut,
                "trainfunc": args.trainfunc, "n_mels": args.n_mels, "log_input": args.log_input,
                "protocol": net.protocol}
    if loss_class.classifies_speakers:
        identity["nClasses"] = head_classes(nClasses, args.speed_perturb)
    # Named only when used, so that the runs of before keep their identity.
    identity.update({name: getattr(args, name) for name, off in MODERN_HEAD_DEFAULTS.items()
                     if getattr(args, name) != off})
    run = Run(args.model, identity, args.lr, args.initial_model, args.save_path, args.max_epoch, args.test_interval,
              speed.precision.autocast_dtype, args.eval_untrained, settings=vars(args), compile=args.compile,
              compile_mode=args.compile_mode,
              finetune=args.finetune, freeze_epochs=args.freeze_epochs,
              train_metric_name="training accuracy (%)" if loss_class.classifies_speakers else "training EER (%)")

    def evaluate():
        return evaluate_list(net, args.test_list, args.test_path, args.eval_frames,
                             num_workers=args.nDataLoaderThread, progress=dist_env.is_main)

    if not dist_env.is_main:  # rank 0 owns the folder and writes in it
        return train(net, loader, sampler, optimizer, scheduler, scaler, device, run, evaluate, dist_env,
                     margin_schedule)
    prepare_folder(args.save_path)
    with exclusive_run(args.save_path), log.log_file(os.path.join(args.save_path, "result", log.LOG_FILE)):
        save_config(args.save_path, {name: value for name, value in vars(args).items() if name != "config"})
        if leakage:  # here, so that train.log keeps it too; rank 0 only, so it is said once
            log.warning(leakage)
        log.info("%d utterances of %d speakers, %d batches of %d x %d per epoch" % (
            len(train_list.files), train_list.num_speakers, len(sampler), args.batch_size, nPerSpeaker))
        train(net, loader, sampler, optimizer, scheduler, scaler, device, run, evaluate, dist_env, margin_schedule)


# The loss-head settings of the modern recipes, at their off values; those in use are part of a run's
# identity, since a resumed run must have the same head.
MODERN_HEAD_DEFAULTS = {"subcenters": 1, "intertopk": 0}


def modern_options(package, name, **options):
    """The `options` given (not None) that plugin `package/name` takes as named parameters, for its
    constructor; InputError naming the flag when it does not take one, rather than ignoring it."""
    import inspect
    from voxtrainer.plugins import FLAGS, load_plugin
    given = {option: value for option, value in options.items() if value is not None}
    taken = inspect.signature(load_plugin(package, name)).parameters
    for option in given:
        if option not in taken:
            flag = {"lr_scale": "lr_reference_batch"}.get(option, option)
            raise InputError("--%s: %s %s does not take it" % (flag, FLAGS[package], name))
    return given


# Each mode flag and what it runs on the network built from the flags; none of them: training.
MODES = {"eval": eval_mode, "extract": extract_mode, "export": export_mode, "verify": verify_mode,
         "verify_list": verify_mode}


def run(argv, seen):
    args = parse_args(argv)
    seen["save_path"] = args.save_path
    chosen = ["--" + dest for dest in list(MODES) + ["average_last"] if getattr(args, dest)]
    if len(chosen) > 1:
        raise InputError("%s are separate modes: give one of them" % " and ".join(chosen))
    if args.calibrate and not args.eval:
        raise InputError("--calibrate is an option of --eval: it fits the scores of --test_list")
    if args.freeze_epochs and not args.finetune:
        raise InputError("--freeze_epochs %d needs --finetune" % args.freeze_epochs)
    if args.finetune and chosen:
        raise InputError("--finetune is an option of training, not of %s" % chosen[0])
    if args.average_last:
        return average_mode(args)

    import torch
    from voxtrainer import log
    from voxtrainer.distributed import Distributed
    from voxtrainer.network import SpeakerNet
    from voxtrainer.plugins import load_plugin
    dist_env = Distributed(args.distributed, use_cuda=args.device != "cpu" and torch.cuda.is_available())
    log.quiet_console(not dist_env.is_main)
    try:
        device = runtime.resolve_device(args.device, dist_env.local_rank)
        runtime.seed_everything(args.seed)
        # --eval/--extract/--export of a checkpoint need no loss: the embedding network alone is used.
        embedding_only = not args.trainfunc and any(getattr(args, dest) for dest in MODES)
        loss_class = None if embedding_only else load_plugin("loss", args.trainfunc)
        load_plugin("models", args.model)
        if (args.finetune and loss_class is not None and loss_class.classifies_speakers and args.train_list
                and not (args.nClasses or args.nSpeakers)):
            # A fine-tuned head is sized for this data: one class per speaker of the train list.
            from voxtrainer.lists import speaker_count
            args.nClasses = speaker_count(args.train_list)
            log.info("--finetune: a loss head of %d classes, one per speaker of %s" % (args.nClasses,
                                                                                      args.train_list))
        nClasses, nPerSpeaker = resolve_group_sizes(args, loss_class)
        try:
            net = SpeakerNet(model=args.model, trainfunc=args.trainfunc, nOut=args.nOut,
                             encoder_type=args.encoder_type, nClasses=head_classes(nClasses, args.speed_perturb),
                             margin=args.margin,
                             scale=args.scale, hard_rank=args.hard_rank, hard_prob=args.hard_prob,
                             n_mels=args.n_mels, log_input=args.log_input, protocol=args.protocol,
                             channels=args.channels, variant=args.variant, subcenters=args.subcenters, intertopk=args.intertopk,
                             intertopk_margin=args.intertopk_margin).to(device)
        except ValueError as error:  # e.g. an unknown --encoder_type
            raise InputError(str(error))
        from voxtrainer.inference import bf16_native
        speed = speed_settings(args.model, device, args.precision, args.mixedprec, args.memory_format,
                               args.cudnn_benchmark, args.compile_mode if args.compile else "default",
                               bf16_native(device))
        for note in speed.notes:
            log.info(note)
        if not args.export:  # exported files are traced from the contiguous layout
            net = net.to(memory_format=speed.memory_format)
            net.set_eval_precision(args.eval_precision)
        if speed.precision.name == "bf16" and runtime.mixedprec_warning(device):
            log.warning(runtime.mixedprec_warning(device))
        args.nDataLoaderThread = runtime.loader_processes(args.nDataLoaderThread)
        args.initial_model = resolve_initial_model(args, dist_env)
        for dest, mode in MODES.items():
            if getattr(args, dest):
                return mode(args, net, dist_env)
        train_mode(args, net, dist_env, nClasses, nPerSpeaker, device, speed)
    finally:
        dist_env.close()
        log.quiet_console(False)


def main(argv=None):
    seen = {}

    def interrupted():
        from voxtrainer.checkpoints import model_paths
        saved = model_paths(seen["save_path"]) if "save_path" in seen else []
        if not saved:
            return "interrupted before any checkpoint was saved"
        return "interrupted; the last saved checkpoint is intact (%s): run the same command to resume" % saved[-1]

    return run_command(lambda: run(argv, seen), prefix="", error_status=2, interrupted_message=interrupted)


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # `kill` ends a run as Ctrl-C does: the same message, the same clean-up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    sys.exit(main())
