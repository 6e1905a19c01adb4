"""Training (no mode flag): everything that can be checked is checked before the first epoch, then
the lists, loader, optimizer, schedules and run description are built from the flags and handed
to voxtrainer.training.loop.train, in the experiment folder this run holds."""

from voxtrainer import log
from voxtrainer.cli.build import head_classes, modern_options
from voxtrainer.config import save_config
from voxtrainer.errors import InputError
from voxtrainer.experiment import ExperimentFolder
from voxtrainer.plugins import load_plugin
from voxtrainer.precision import fused_optimizer


def train_mode(args, net, dist_env, nClasses, nPerSpeaker, device, speed):
    import torch
    from voxtrainer.reading.datasets import make_train_loader
    from voxtrainer.scoring.evaluation import evaluate_list
    from voxtrainer.training.loop import Run, train
    check_training_flags(args)
    check_freezing(args.freeze_epochs, args.max_epoch, args.trainfunc, net)
    train_list, leakage = read_lists(args, net, progress=dist_env.is_main)
    loss_class = check_loss(args, nClasses, nPerSpeaker, train_list.num_speakers)
    augment = None
    if args.augment:
        from voxtrainer.reading.augment import Augmenter
        augment = Augmenter(args.musan_path, args.rir_path)
    fused = fused_optimizer(speed.precision, device.type) and args.optimizer in ("adam", "sgd")
    optimizer, scheduler = build_optimizer(args, net, dist_env.world_size * args.batch_size * nPerSpeaker, fused)
    margin_schedule = build_margin_schedule(args, net)
    loader, sampler = make_train_loader(train_list, args.max_frames, nPerSpeaker, args.max_seg_per_spk,
                                        args.batch_size, args.nDataLoaderThread, args.seed,
                                        num_replicas=dist_env.world_size, rank=dist_env.rank, augment=augment,
                                        protocol=net.protocol, padding=args.short_crop_padding,
                                        speed_perturb=args.speed_perturb, num_classes=nClasses, dither=args.dither)
    scaler = torch.amp.GradScaler(device.type, enabled=speed.precision.loss_scaling)
    folder = ExperimentFolder(args.save_path)
    identity = run_identity(args, net.protocol, loss_class, nClasses, nPerSpeaker)
    run = Run(args.model, identity, args.lr, args.initial_model, folder, args.max_epoch, args.test_interval,
              speed.precision.autocast_dtype, args.eval_untrained, settings=vars(args), compile=args.compile,
              compile_mode=args.compile_mode, finetune=args.finetune, freeze_epochs=args.freeze_epochs,
              train_metric_name="training accuracy (%)" if loss_class.classifies_speakers else "training EER (%)")

    def evaluate():
        return evaluate_list(net, args.test_list, args.test_path, args.eval_frames,
                             num_workers=args.nDataLoaderThread, progress=dist_env.is_main)

    if not dist_env.is_main:  # rank 0 owns the folder and writes in it
        return train(net, loader, sampler, optimizer, scheduler, scaler, device, run, evaluate, dist_env,
                     margin_schedule)
    folder.prepare()
    with folder.exclusive(), log.log_file(folder.log_file):
        save_config(folder.config_file, {name: value for name, value in vars(args).items() if name != "config"})
        if leakage:  # here, so that train.log keeps it too; rank 0 only, so it is said once
            log.warning(leakage)
        log.info("%d utterances of %d speakers, %d batches of %d x %d per epoch" % (
            len(train_list.files), train_list.num_speakers, len(sampler), args.batch_size, nPerSpeaker))
        train(net, loader, sampler, optimizer, scheduler, scaler, device, run, evaluate, dist_env, margin_schedule)


def check_loss(args, nClasses, nPerSpeaker, num_speakers):
    """The loss of --trainfunc, refused in one line where this data or these group sizes do not fit it."""
    loss_class = load_plugin("loss", args.trainfunc)
    if loss_class.classifies_speakers and nClasses < num_speakers:
        raise InputError("--nClasses %d: %s has %d speakers, and --trainfunc %s needs a class for each (the seed "
                         "sets it with --nSpeakers)" % (nClasses, args.train_list, num_speakers, args.trainfunc))
    if loss_class.utterances_per_speaker is None and nPerSpeaker < 2:
        raise InputError("--nPerSpeaker %d: --trainfunc %s compares utterances of one speaker within a batch, so it "
                         "needs at least 2 (the seed sets it with --nSpeakers)" % (nPerSpeaker, args.trainfunc))
    modern_options("loss", args.trainfunc, subcenters=None if args.subcenters == 1 else args.subcenters,
                   intertopk=args.intertopk or None)
    return loss_class


def check_training_flags(args):
    """The flag combinations training cannot take, refused before any list is read."""
    if not args.train_list or not args.test_list:
        raise InputError("training needs --train_list and --test_list (or --eval to only score a list)")
    if args.finetune and not args.initial_model:
        raise InputError("--finetune needs --initial_model (the model whose embedding network is fine-tuned)")
    if args.freeze_epochs and args.distributed:
        raise InputError("--freeze_epochs is not available with --distributed (DistributedDataParallel expects "
                         "every parameter it was given to receive a gradient)")
    if args.max_frames < 1:
        raise InputError("--max_frames %d: a training crop needs at least 1 frame" % args.max_frames)
    if args.margin_end_epoch is not None and not args.margin_start_epoch:
        raise InputError("--margin_end_epoch needs --margin_start_epoch (the epoch the margin starts rising)")
    if args.margin_start_epoch and args.margin_end_epoch is None:
        raise InputError("--margin_start_epoch needs --margin_end_epoch (the first epoch at the full --margin)")


def read_lists(args, net, progress):
    """(the train list, after the duration filter, and the leakage warning or None); the test list
    and its audio (whole files long enough for the network when --eval_frames is 0) are checked here
    too, so that an error in it costs no training time."""
    from voxtrainer.reading.audio import check_padding
    from voxtrainer.reading.input_length import whole_file_checker
    from voxtrainer.reading.lists import TestList, TrainList, leakage_warning, leave_out_by_duration
    check_padding(args.short_crop_padding, net.protocol)
    net.check_eval_frames(args.max_frames, "--max_frames")
    whole_file_check = whole_file_checker(args.eval_frames, net.protocol, net.check_eval_frames(args.eval_frames),
                                          args.model)
    train_list = TrainList(args.train_list, args.train_path)
    if args.min_train_seconds is not None or args.max_train_seconds is not None:
        train_list, note = leave_out_by_duration(train_list, args.min_train_seconds, args.max_train_seconds,
                                                 progress=progress)
        log.info(note)  # before a possible error about speakers the filter left with too few utterances
    test_list = TestList(args.test_list, args.test_path)
    test_list.check_audio(check_length=whole_file_check)
    return train_list, leakage_warning(train_list, test_list)


def build_optimizer(args, net, utterances_per_step, fused=False):
    """(optimizer, LR scheduler) of the flags; --lr_reference_batch scales the LR by the utterances
    of a step (all processes) over the reference batch, as WeSpeaker does. `fused`: PyTorch's fused
    optimizer kernels (CUDA, under a precision that is not fp32: voxtrainer.precision)."""
    optimizer_options = modern_options("optimizer", args.optimizer, momentum=args.momentum,
                                       nesterov=args.nesterov or None)
    if fused:
        optimizer_options["fused"] = True
    optimizer = load_plugin("optimizer", args.optimizer)(net.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                                         **optimizer_options)
    lr_scale = 1.0
    if args.lr_reference_batch:
        modern_options("scheduler", args.scheduler, lr_scale=True)
        lr_scale = utterances_per_step / args.lr_reference_batch
    scheduler = load_plugin("scheduler", args.scheduler)(optimizer, test_interval=args.test_interval,
                                                         lr_decay=args.lr_decay, lr=args.lr, final_lr=args.final_lr,
                                                         warmup_epochs=args.warmup_epochs, max_epoch=args.max_epoch,
                                                         lr_scale=lr_scale)
    return optimizer, scheduler


def build_margin_schedule(args, net):
    if not args.margin_start_epoch:
        return None
    from voxtrainer.training.schedules import MarginSchedule
    return MarginSchedule(net.__L__, args.initial_margin, args.margin, args.margin_start_epoch,
                          args.margin_end_epoch, args.margin_rise)


def run_identity(args, protocol, loss_class, nClasses, nPerSpeaker):
    """What a resumed run is compared on (voxtrainer.training.resume_settings), with the values in force."""
    from voxtrainer.training.resume_settings import run_settings
    in_force = dict(vars(args), protocol=protocol, nPerSpeaker=nPerSpeaker,
                    nClasses=head_classes(nClasses, args.speed_perturb))
    if not loss_class.classifies_speakers:
        del in_force["nClasses"]  # no classes: the count is unused
    return run_settings(in_force)


def check_freezing(freeze_epochs, max_epoch, trainfunc, net):
    """--freeze_epochs where it can take effect: within the run, with a loss head that has weights
    to train while the embedding network is fixed."""
    if freeze_epochs > max_epoch:
        raise InputError("--freeze_epochs %d is beyond --max_epoch %d: the embedding network would never train; "
                         "give at most --max_epoch (equal to it: only the new head trains)" % (freeze_epochs,
                                                                                             max_epoch))
    if freeze_epochs and not any(parameter.requires_grad for parameter in net.__L__.parameters()):
        raise InputError("--freeze_epochs %d: --trainfunc %s has no weights of its own, so nothing would train "
                         "while the embedding network is frozen; use a loss with a head (e.g. aamsoftmax, "
                         "angleproto)" % (freeze_epochs, trainfunc))
