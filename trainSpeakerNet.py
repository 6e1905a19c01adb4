#!/usr/bin/env python
"""Train a speaker-embedding network on VoxCeleb, or score a verification list (--eval), extract
embeddings (--extract), export the network (--export), verify pairs (--verify, --verify_list),
average saved models (--average_last).

Flags and outputs follow the 2020 voxceleb_trainer (README.md). This file is the command line: it
parses the flags (voxtrainer/cli/flags.py), builds the network they describe and hands it to the
mode asked for; each mode is a module of voxtrainer/cli/."""

import signal
import sys

from voxtrainer import runtime  # first: it sets process settings that must precede torch
from voxtrainer.cli.flags import explicit_flags, parse_args
from voxtrainer.errors import InputError, out_of_memory_line, run_command

# Each mode flag and the module:function that runs it on the network built from the flags; none of
# them: training.
MODES = {"eval": "evaluate:eval_mode", "extract": "outputs:extract_mode", "export": "outputs:export_mode",
         "verify": "verify:verify_mode", "verify_list": "verify:verify_mode"}


def mode_function(name):
    import importlib
    module, function = name.split(":")
    return getattr(importlib.import_module("voxtrainer.cli." + module), function)


def check_modes(args):
    """The mode flags given (at most one) and the options that belong to one mode only."""
    chosen = ["--" + dest for dest in list(MODES) + ["average_last"] if getattr(args, dest)]
    if len(chosen) > 1:
        raise InputError("%s are separate modes: give one of them" % " and ".join(chosen))
    if args.calibrate and not args.eval:
        raise InputError("--calibrate is an option of --eval: it fits the scores of --test_list")
    if args.freeze_epochs and not args.finetune:
        raise InputError("--freeze_epochs %d needs --finetune" % args.freeze_epochs)
    if args.finetune and chosen:
        raise InputError("--finetune is an option of training, not of %s" % chosen[0])
    return [dest for dest in MODES if getattr(args, dest)]


def run(argv, seen):
    args = parse_args(argv)
    seen["save_path"] = args.save_path
    modes = check_modes(args)
    if args.average_last:
        return mode_function("outputs:average_mode")(args)

    import torch
    from voxtrainer import log
    from voxtrainer.cli import build
    from voxtrainer.plugins import load_plugin
    from voxtrainer.training.distributed import Distributed
    dist_env = Distributed(args.distributed, use_cuda=args.device != "cpu" and torch.cuda.is_available())
    log.quiet_console(not dist_env.is_main)
    try:
        device = runtime.resolve_device(args.device, dist_env.local_rank)
        runtime.seed_everything(args.seed)
        # --eval/--extract/--export of a checkpoint need no loss: the embedding network alone is used.
        loss_class = None if modes and not args.trainfunc else load_plugin("loss", args.trainfunc)
        load_plugin("models", args.model)
        build.warn_unused_options(explicit_flags(argv), {
            "models": args.model, "loss": args.trainfunc if loss_class else "",
            "optimizer": "" if modes else args.optimizer, "scheduler": "" if modes else args.scheduler})
        build.finetune_classes(args, loss_class)
        nClasses, nPerSpeaker = build.resolve_group_sizes(args, loss_class)
        speed = build.speed_settings(args, device)
        net = build.build_network(args, nClasses, device, speed.memory_format)
        args.nDataLoaderThread = runtime.loader_processes(args.nDataLoaderThread)
        args.initial_model = build.resolve_initial_model(args, dist_env)
        if modes:
            return mode_function(MODES[modes[0]])(args, net, dist_env)
        mode_function("train:train_mode")(args, net, dist_env, nClasses, nPerSpeaker, device, speed)
    except (MemoryError, RuntimeError) as error:  # a size no machine holds: a flag's value, one line
        line = out_of_memory_line(error)
        if line is None:
            raise
        raise InputError(line) from error
    finally:
        dist_env.close()
        log.quiet_console(False)


def main(argv=None):
    seen = {}

    def interrupted():
        from voxtrainer.experiment import ExperimentFolder
        saved = ExperimentFolder(seen["save_path"]).newest_model() if "save_path" in seen else None
        if not saved:
            return "interrupted before any checkpoint was saved"
        return "interrupted; the last saved checkpoint is intact (%s): run the same command to resume" % saved

    return run_command(lambda: run(argv, seen), prefix="", error_status=2, interrupted_message=interrupted)


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # `kill` ends a run as Ctrl-C does: the same message, the same clean-up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    sys.exit(main())
