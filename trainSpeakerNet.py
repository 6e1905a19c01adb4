#!/usr/bin/env python
"""Train a speaker-embedding network on VoxCeleb, or score a verification list (--eval).

Flags and outputs follow the 2020 voxceleb_trainer; see README.md."""

import argparse
import glob
import hashlib
import json
import os
import random
import sys
import time

import runtime_env  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import numpy
import torch
import yaml
from tqdm import tqdm

from augment import make_augmenter
from average_checkpoints import run_average
from DatasetLoader import InputError, TestList, TrainList, make_train_loader
from export import FORMATS as EXPORT_FORMATS, run_export
from extract import run_extract
from reports import write_reports
from score_norm import METHODS as SCORE_NORMS, check_score_norm_args, report_normalised
from SpeakerNet import SpeakerNet, atomic_torch_save, cpu_has_native_bf16, import_by_name, preferred_memory_format
from tuneThreshold import minDCF, tuneThresholdfromScore

DEFAULT_NCLASSES = 5994  # VoxCeleb2 dev speakers: the seed's --nSpeakers default
DEFAULT_NPERSPEAKER = 2


def build_parser():
    parser = argparse.ArgumentParser(description="SpeakerNet: train speaker embeddings, score verification trials",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", type=str, default=None, help="YAML file of flag values; the command line wins")

    data = parser.add_argument_group("data")
    data.add_argument("--max_frames", type=int, default=200, help="Frames (10 ms) per training crop")
    data.add_argument("--eval_frames", type=int, default=None,
                      help="Frames per evaluation crop, 0 = whole file (default: --max_frames, as the seed)")
    data.add_argument("--batch_size", type=int, default=200, help="Speakers (groups) per batch")
    data.add_argument("--max_seg_per_spk", type=int, default=100, help="Maximum utterances per speaker per epoch")
    data.add_argument("--nDataLoaderThread", type=int, default=5, help="Audio-loading worker processes")
    data.add_argument("--train_list", type=str, default="", help="Train list: 'speaker path' per line")
    data.add_argument("--test_list", type=str, default="", help="Test list: 'label enrol test' per line")
    data.add_argument("--train_path", type=str, default="voxceleb2", help="Root of the train list's paths")
    data.add_argument("--test_path", type=str, default="voxceleb1", help="Root of the test list's paths")

    train = parser.add_argument_group("training")
    train.add_argument("--test_interval", type=int, default=10, help="Evaluate, decay the LR and save every N epochs")
    train.add_argument("--max_epoch", type=int, default=500, help="Last epoch")
    train.add_argument("--trainfunc", type=str, default="", help="Loss: a module name in loss/")
    train.add_argument("--optimizer", type=str, default="adam", help="Optimizer: a module name in optimizer/")
    train.add_argument("--scheduler", type=str, default="steplr", help="LR schedule: a module name in scheduler/")
    train.add_argument("--lr", type=float, default=0.001, help="Learning rate")
    train.add_argument("--lr_decay", type=float, default=0.95, help="LR factor every --test_interval epochs")
    train.add_argument("--weight_decay", type=float, default=None, help="Weight decay (default: the optimizer's)")
    train.add_argument("--hard_prob", type=float, default=0.5, help="Hard negative probability (triplet/contrastive)")
    train.add_argument("--hard_rank", type=int, default=10, help="Hard negative rank (triplet/contrastive)")
    train.add_argument("--margin", type=float, default=1, help="Loss margin")
    train.add_argument("--scale", type=float, default=15, help="Loss scale (AM/AAM-softmax)")
    train.add_argument("--nSpeakers", type=int, default=None,
                       help="As the seed: softmax classes for softmax-family losses (default %d), utterances "
                            "per speaker per batch for metric losses (default %d)" % (DEFAULT_NCLASSES,
                                                                                      DEFAULT_NPERSPEAKER))
    train.add_argument("--nClasses", type=int, default=None, help="Softmax classes (wins over --nSpeakers)")
    train.add_argument("--nPerSpeaker", type=int, default=None,
                       help="Utterances per speaker per batch for metric losses (wins over --nSpeakers)")
    train.add_argument("--seed", type=int, default=0, help="Seed of weights, sampling and crops")
    train.add_argument("--mixedprec", action="store_true", help="fp16 autocast on CUDA, bf16 on CPU")
    train.add_argument("--distributed", action="store_true", help="DistributedDataParallel under torchrun")
    train.add_argument("--eval_untrained", action="store_true",
                       help="Also evaluate the model before the first epoch, to compare with the trained EER")

    io = parser.add_argument_group("models and outputs")
    io.add_argument("--initial_model", type=str, default="", help="Weights to start from / to evaluate")
    io.add_argument("--save_path", type=str, default="data/exp1", help="Folder for models and results")
    io.add_argument("--eval", dest="eval", action="store_true", help="Only score --test_list and print the EER")
    io.add_argument("--device", type=str, default="auto", choices=["auto", "cpu", "cuda"], help="Compute device")

    model = parser.add_argument_group("model")
    model.add_argument("--model", type=str, default="", help="Network: a module name in models/")
    model.add_argument("--encoder_type", "--encoder", dest="encoder_type", type=str, default="SAP",
                       help="Temporal pooling: SAP, TAP or MAX")
    model.add_argument("--nOut", type=int, default=512, help="Embedding size")

    extra = parser.add_argument_group("beyond the original (all off by default)")
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
    extra.add_argument("--top_k", type=int, default=300, help="AS-norm: highest cohort scores kept per side")
    extra.add_argument("--export", type=str, default=None, choices=EXPORT_FORMATS,
                       help="Only write the embedding network of --initial_model to --export_out")
    extra.add_argument("--export_out", type=str, default="", help="File that --export writes")
    extra.add_argument("--average_last", type=int, default=0,
                       help="Only average the last N models of --save_path/model into one .model")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    early, _ = parser.parse_known_args(argv)
    if early.config:
        parser.set_defaults(**read_config(early.config, parser))
    args = parser.parse_args(argv)
    if args.eval_frames is None:
        args.eval_frames = args.max_frames
    return args


def read_config(path, parser):
    """Flag values from a YAML mapping, checked against the parser's flags."""
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle) or {}
    except OSError as error:
        raise InputError("%s: cannot read config (%s)" % (path, error.strerror))
    except yaml.YAMLError as error:
        raise InputError("%s: invalid YAML (%s)" % (path, str(error).splitlines()[0]))
    if not isinstance(config, dict):
        raise InputError("%s: expected a mapping of flag names to values" % path)
    known = {action.dest for action in parser._actions}
    config = {("encoder_type" if key == "encoder" else key): value for key, value in config.items()}
    unknown = sorted(set(config) - known - {"help"})
    if unknown:
        raise InputError("%s: unknown setting(s) %s" % (path, ", ".join(unknown)))
    return config


# ---------------------------------------------------------------------------------------------
# Set-up

def resolve_group_sizes(args, loss_class):
    """(softmax classes, utterances per speaker per batch) from the seed's overloaded --nSpeakers."""
    nClasses = args.nClasses or args.nSpeakers or DEFAULT_NCLASSES
    fixed = getattr(loss_class, "utterances_per_speaker", None)
    nPerSpeaker = fixed or args.nPerSpeaker or args.nSpeakers or DEFAULT_NPERSPEAKER
    return nClasses, nPerSpeaker


def resolve_device(name, local_rank=0):
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (use --device cpu)")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def seed_everything(seed):
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


class Distributed:
    """torchrun's environment contract: RANK, WORLD_SIZE, LOCAL_RANK (single process otherwise)."""

    def __init__(self, enabled, device_name):
        self.rank = int(os.environ.get("RANK", 0)) if enabled else 0
        self.world_size = int(os.environ.get("WORLD_SIZE", 1)) if enabled else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0)) if enabled else 0
        self.enabled = enabled
        if enabled:
            if "RANK" not in os.environ:
                raise InputError("--distributed: launch with torchrun --nproc_per_node=N trainSpeakerNet.py ...")
            use_cuda = device_name != "cpu" and torch.cuda.is_available()
            if use_cuda:
                torch.cuda.set_device(self.local_rank)
            torch.distributed.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def is_main(self):
        return self.rank == 0

    def close(self):
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def model_paths(save_path):
    model_dir = os.path.join(save_path, "model")
    return sorted(glob.glob(os.path.join(model_dir, "model0*.model")))


def epoch_of(model_file):
    return int(os.path.splitext(os.path.basename(model_file))[0][5:])


def state_file(model_file):
    return os.path.splitext(model_file)[0] + ".state"


# ---------------------------------------------------------------------------------------------
# Evaluation

def evaluate(net, args, progress=True, return_embeddings=False):
    """(EER, scores, labels, trials) of --test_list with the seed's protocol, and with
    return_embeddings also (files, embeddings) of its files."""
    scores, labels, trials, *embeddings = net.evaluateFromList(
        args.test_list, test_path=args.test_path, eval_frames=args.eval_frames,
        num_workers=args.nDataLoaderThread, progress=progress, return_embeddings=return_embeddings)
    eer = tuneThresholdfromScore(scores, labels, [1, 0.1])[1]
    return (eer, scores, labels, trials, *embeddings)


def run_eval(net, args):
    if args.initial_model:
        source = args.initial_model
    elif model_paths(args.save_path):
        source = model_paths(args.save_path)[-1]
    else:
        raise InputError("--eval needs --initial_model (or a trained model in %s/model)" % args.save_path)
    net.loadParameters(source)
    print("Model %s loaded!" % source)
    check_score_norm_args(args)
    eer, scores, labels, trials, (test_files, embeddings) = evaluate(net, args, return_embeddings=True)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return  # --distributed --eval: every rank embedded a shard of the files; rank 0 reports
    print("EER %2.4f" % eer)
    print("MinDCF %.4f (p_target 0.05), %.4f (p_target 0.01)" % (minDCF(scores, labels, 0.05),
                                                                  minDCF(scores, labels, 0.01)))
    result_dir = os.path.join(args.save_path, "result")
    os.makedirs(result_dir, exist_ok=True)
    with open(os.path.join(result_dir, "eval_scores.txt"), "w") as handle:
        for score, label, trial in zip(scores, labels, trials):
            handle.write("%.6f %d %s\n" % (score, label, trial))
    write_reports(scores, labels, result_dir, "eval")
    if args.score_norm != "none":
        normalised = report_normalised(net, args, source, scores, labels, trials, test_files, embeddings, result_dir)
        write_reports(normalised, labels, result_dir, "eval_" + args.score_norm)


# ---------------------------------------------------------------------------------------------
# Training

def train_one_epoch(model, loader, optimizer, scaler, device, mixedprec, epoch, show_progress):
    """One pass over the sampler's batches: (mean loss, mean metric)."""
    model.train()
    total_loss, total_metric, steps = 0.0, 0.0, 0
    autocast_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    bar = tqdm(loader, desc="Epoch %d" % epoch, unit="batch", disable=not show_progress, leave=False)
    tstart = time.time()
    for data, label in bar:
        data, label = data.to(device, non_blocking=True), label.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=mixedprec):
            loss, metric = model(data, label)
        if not finite_on_all_ranks(loss):
            raise TrainingDiverged("loss became %s at epoch %d, step %d" % (loss.item(), epoch, steps + 1))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

        total_loss += loss.item()
        total_metric += float(metric)
        steps += 1
        elapsed, tstart = time.time() - tstart, time.time()
        bar.set_postfix(loss="%.4f" % (total_loss / steps), acc_or_eer="%.2f%%" % (total_metric / steps),
                        utt_s="%.1f" % (data.shape[0] * data.shape[1] / max(elapsed, 1e-9)))
    return total_loss / max(steps, 1), total_metric / max(steps, 1)


class TrainingDiverged(Exception):
    pass


def finite_on_all_ranks(loss):
    """Whether the loss is finite, agreed by every rank under --distributed: a rank that stopped
    alone would leave the others waiting in the gradient all-reduce."""
    finite = torch.isfinite(loss.detach()).float().reshape(1)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    return bool(finite.item())


def broadcast_buffers(net):
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them at the
    start of each forward, so after an epoch's last step every rank holds its own last update;
    evaluation must use the values the checkpoint (written by rank 0) holds."""
    for buffer in net.buffers():
        torch.distributed.broadcast(buffer, src=0)


RANK_DUMP_ENV = "SPEAKERNET_RANK_DUMP"


def tensor_digest(named_tensors):
    """sha256 of (name, tensor) pairs: names and contiguous CPU bytes, in the order given."""
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def dump_rank_state(net, sampler, epoch, rank, world_size, result_dir):
    """Debug hook (SPEAKERNET_RANK_DUMP=1): each rank records in result/rank<RANK>.json, per epoch,
    the groups of its sampler shard (train-list line indices, 0-based), its step count, and sha256
    digests of its parameters and of its whole state_dict (tensor_digest), so that sharding and
    replica agreement can be checked (tests/test_distributed.py)."""
    path = os.path.join(result_dir, "rank%d.json" % rank)
    record = {"rank": rank, "world_size": world_size, "epochs": {}}
    if os.path.isfile(path):
        with open(path) as handle:
            record = json.load(handle)
    batches = sampler.batches()
    record["epochs"][str(epoch)] = {
        "steps": len(batches),
        "groups": [[int(index) for index in group.utterances] for batch in batches for group in batch],
        "param_sha256": tensor_digest(net.named_parameters()),
        "state_sha256": tensor_digest(net.state_dict().items()),
    }
    with open(path, "w") as handle:
        json.dump(record, handle)


def save_checkpoint(net, optimizer, scheduler, scaler, epoch, model_dir):
    """Training state first, then the model: the newest .model always has a complete .state."""
    model_file = os.path.join(model_dir, "model%09d.model" % epoch)
    state = {
        "epoch": torch.tensor(epoch),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    atomic_torch_save(state, state_file(model_file))
    net.saveParameters(model_file)
    return model_file


def restore_training(net, optimizer, scheduler, scaler, args, log):
    """Resume from the newest model in --save_path, else start from --initial_model.
    Returns the first epoch to run."""
    saved = model_paths(args.save_path)
    if saved:
        newest = saved[-1]
        net.loadParameters(newest)
        epoch = epoch_of(newest)
        if os.path.isfile(state_file(newest)):
            state = torch.load(state_file(newest), map_location="cpu", weights_only=True)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["torch_rng"])
            random.setstate(state["python_rng"])
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            log("Resumed from %s (epoch %d, LR %f)" % (newest, epoch, current_lr(optimizer)))
        else:
            # A model from the original trainer: replay its LR decays, fresh optimizer state.
            for _ in range(epoch):
                scheduler.step()
            log("Model %s loaded from previous state (no training state: fresh optimizer)!" % newest)
        return epoch + 1
    if args.initial_model:
        net.loadParameters(args.initial_model)
        log("Model %s loaded!" % args.initial_model)
    return 1


def current_lr(optimizer):
    return max(group["lr"] for group in optimizer.param_groups)


def run_training(net, args, loss_class, nPerSpeaker, device, dist_env):
    if not args.train_list or not args.test_list:
        raise InputError("training needs --train_list and --test_list (or --eval to only score a list)")
    model_dir = os.path.join(args.save_path, "model")
    result_dir = os.path.join(args.save_path, "result")
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(result_dir, exist_ok=True)
    log = print if dist_env.is_main else (lambda *a, **k: None)

    train_list = TrainList(args.train_list, args.train_path)
    TestList(args.test_list, args.test_path)  # fail now, not after the first epochs
    loader, sampler = make_train_loader(train_list, args.max_frames, nPerSpeaker, args.max_seg_per_spk,
                                        args.batch_size, args.nDataLoaderThread, args.seed,
                                        num_replicas=dist_env.world_size, rank=dist_env.rank,
                                        augment=make_augmenter(args))
    optimizer = import_by_name("optimizer", args.optimizer, "Optimizer", "--optimizer").Optimizer(
        net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = import_by_name("scheduler", args.scheduler, "Scheduler", "--scheduler").Scheduler(
        optimizer, test_interval=args.test_interval, lr_decay=args.lr_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=args.mixedprec and device.type == "cuda")
    first_epoch = restore_training(net, optimizer, scheduler, scaler, args, log)

    model = net
    if dist_env.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)

    scorefile = open(os.path.join(result_dir, "scores.txt"), "a+") if dist_env.is_main else None
    if scorefile:
        for name, value in sorted(vars(args).items()):
            scorefile.write("%s %s\n" % (name, value))
        scorefile.flush()
    sampler.set_epoch(first_epoch)
    log("%d utterances of %d speakers, %d batches of %d x %d per epoch" % (
        len(train_list.files), train_list.num_speakers, len(sampler), args.batch_size, nPerSpeaker))

    if first_epoch > args.max_epoch:
        log("Nothing to train: %s already holds epoch %d (--max_epoch %d); use another --save_path "
            "to start again" % (model_dir, first_epoch - 1, args.max_epoch))
    untrained_eer = None
    if args.eval_untrained and first_epoch == 1:
        untrained_eer = evaluate(net, args, progress=dist_env.is_main)[0]
        log("Untrained model: VEER %2.4f" % untrained_eer)
        if scorefile:
            scorefile.write("IT 0, untrained, VEER %2.4f\n" % untrained_eer)

    last_saved, eer = None, None
    for epoch in range(first_epoch, args.max_epoch + 1):
        sampler.set_epoch(epoch)
        lr = current_lr(optimizer)
        log(time.strftime("%Y-%m-%d %H:%M:%S"), epoch, "Training %s with LR %f..." % (args.model, lr))
        try:
            loss, metric = train_one_epoch(model, loader, optimizer, scaler, device, args.mixedprec, epoch,
                                           show_progress=dist_env.is_main)
        except TrainingDiverged as error:
            kept = last_saved or (model_paths(args.save_path) or ["none"])[-1]
            raise InputError("%s; the last good checkpoint is kept (%s); try a lower --lr" % (error, kept))
        scheduler.step()
        if dist_env.enabled:
            broadcast_buffers(net)
        if os.environ.get(RANK_DUMP_ENV):
            dump_rank_state(net, sampler, epoch, dist_env.rank, dist_env.world_size, result_dir)

        if epoch % args.test_interval == 0 or epoch == args.max_epoch:
            log(time.strftime("%Y-%m-%d %H:%M:%S"), epoch, "Evaluating...")
            eer, scores, labels, _ = evaluate(net, args, progress=dist_env.is_main)
            line = "LR %f, TEER/TAcc %2.2f, TLOSS %f, VEER %2.4f" % (lr, metric, loss, eer)
            if dist_env.is_main:
                log("MinDCF %.4f (p_target 0.05), %.4f (p_target 0.01)" % (minDCF(scores, labels, 0.05),
                                                                           minDCF(scores, labels, 0.01)))
                last_saved = save_checkpoint(net, optimizer, scheduler, scaler, epoch, model_dir)
                with open(os.path.join(model_dir, "model%09d.eer" % epoch), "w") as eerfile:
                    eerfile.write("%.4f" % eer)
                write_reports(scores, labels, result_dir, "model%09d" % epoch)
        else:
            line = "LR %f, TEER/TAcc %2.2f, TLOSS %f" % (lr, metric, loss)
        log(time.strftime("%Y-%m-%d %H:%M:%S"), line)
        if scorefile:
            scorefile.write("IT %d, %s\n" % (epoch, line))
            scorefile.flush()
    if eer is not None:
        log("Final test EER %2.4f%%" % eer + ("" if untrained_eer is None else
                                               " (untrained model: %2.4f%%)" % untrained_eer))
    if scorefile:
        scorefile.close()


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    try:
        args = parse_args(argv)
        modes = [flag for flag, chosen in (("--eval", args.eval), ("--extract", args.extract),
                                           ("--export", args.export), ("--average_last", args.average_last))
                 if chosen]
        if len(modes) > 1:
            raise InputError("%s are separate modes: give one of them" % " and ".join(modes))
        if args.average_last:
            run_average(model_paths(args.save_path), args.average_last, args.save_path)
            return 0
        dist_env = Distributed(args.distributed, args.device)
        try:
            device = resolve_device(args.device, dist_env.local_rank)
            seed_everything(args.seed)
            loss_class = import_by_name("loss", args.trainfunc, "LossFunction", "--trainfunc").LossFunction
            import_by_name("models", args.model, "MainModel", "--model")
            nClasses, nPerSpeaker = resolve_group_sizes(args, loss_class)
            try:
                net = SpeakerNet(model=args.model, trainfunc=args.trainfunc, nOut=args.nOut,
                                 encoder_type=args.encoder_type, nClasses=nClasses, margin=args.margin,
                                 scale=args.scale, hard_rank=args.hard_rank, hard_prob=args.hard_prob).to(device)
            except ValueError as error:  # e.g. an unknown --encoder_type
                raise InputError(str(error))
            if not args.export:  # channels_last on CPU: faster oneDNN convolutions (see benchmark.py)
                net = net.to(memory_format=preferred_memory_format(device))
            if args.mixedprec and device.type == "cpu" and not cpu_has_native_bf16() and dist_env.is_main:
                print("WARNING: --mixedprec on CPU runs bf16 autocast, but this CPU has no native bf16 "
                      "(oneDNN needs AVX-512 or AMX): bf16 is emulated and a train step is several times "
                      "slower than fp32 (python benchmark.py measures it); consider leaving --mixedprec off",
                      file=sys.stderr)
            if args.eval:
                run_eval(net, args)
            elif args.extract:
                run_extract(net, args)
            elif args.export:
                run_export(net, args)
            else:
                run_training(net, args, loss_class, nPerSpeaker, device, dist_env)
        finally:
            dist_env.close()
    except InputError as error:
        print("error: %s" % error.line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last saved checkpoint is intact", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
