#!/usr/bin/env python
"""Train a speaker-embedding network on VoxCeleb, or score a verification list (--eval).

Flags and outputs follow the 2020 voxceleb_trainer; see README.md."""

import argparse
import glob
import os
import random
import sys
import time

import numpy
import torch
import yaml
from tqdm import tqdm

from DatasetLoader import InputError, TrainList, make_train_loader
from SpeakerNet import SpeakerNet, atomic_torch_save, import_by_name
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

def evaluate(net, args, progress=True):
    """(EER, minDCF(0.05), scores, labels, trials) of --test_list with the seed's protocol."""
    scores, labels, trials = net.evaluateFromList(args.test_list, test_path=args.test_path,
                                                  eval_frames=args.eval_frames,
                                                  num_workers=args.nDataLoaderThread, progress=progress)
    eer = tuneThresholdfromScore(scores, labels, [1, 0.1])[1]
    return eer, scores, labels, trials


def run_eval(net, args):
    if args.initial_model:
        source = args.initial_model
    elif model_paths(args.save_path):
        source = model_paths(args.save_path)[-1]
    else:
        raise InputError("--eval needs --initial_model (or a trained model in %s/model)" % args.save_path)
    net.loadParameters(source)
    print("Model %s loaded!" % source)
    eer, scores, labels, trials = evaluate(net, args)
    print("EER %2.4f" % eer)
    print("MinDCF %.4f (p_target 0.05), %.4f (p_target 0.01)" % (minDCF(scores, labels, 0.05),
                                                                  minDCF(scores, labels, 0.01)))
    result_dir = os.path.join(args.save_path, "result")
    os.makedirs(result_dir, exist_ok=True)
    with open(os.path.join(result_dir, "eval_scores.txt"), "w") as handle:
        for score, label, trial in zip(scores, labels, trials):
            handle.write("%.6f %d %s\n" % (score, label, trial))


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
        if not torch.isfinite(loss):
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
    loader, sampler = make_train_loader(train_list, args.max_frames, nPerSpeaker, args.max_seg_per_spk,
                                        args.batch_size, args.nDataLoaderThread, args.seed,
                                        num_replicas=dist_env.world_size, rank=dist_env.rank)
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
    log("%d utterances of %d speakers, %d batches of %d x %d per epoch" % (
        len(train_list.files), train_list.num_speakers, len(sampler), args.batch_size, nPerSpeaker))

    last_saved = None
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

        if epoch % args.test_interval == 0 or epoch == args.max_epoch:
            log(time.strftime("%Y-%m-%d %H:%M:%S"), epoch, "Evaluating...")
            eer = evaluate(net, args, progress=dist_env.is_main)[0]
            line = "LR %f, TEER/TAcc %2.2f, TLOSS %f, VEER %2.4f" % (lr, metric, loss, eer)
            if dist_env.is_main:
                last_saved = save_checkpoint(net, optimizer, scheduler, scaler, epoch, model_dir)
                with open(os.path.join(model_dir, "model%09d.eer" % epoch), "w") as eerfile:
                    eerfile.write("%.4f" % eer)
        else:
            line = "LR %f, TEER/TAcc %2.2f, TLOSS %f" % (lr, metric, loss)
        log(time.strftime("%Y-%m-%d %H:%M:%S"), line)
        if scorefile:
            scorefile.write("IT %d, %s\n" % (epoch, line))
            scorefile.flush()
    if scorefile:
        scorefile.close()


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    try:
        args = parse_args(argv)
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
            if args.eval:
                run_eval(net, args)
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
