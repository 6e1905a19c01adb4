"""From flags to a network: the softmax classes and group size the seed's --nSpeakers means, the
SpeakerNet the flags describe on its device, --initial_model fetched when it is a URL, and the
check that every explicitly given model, loss, optimizer and scheduler option is one the chosen
plugin takes (a warning line naming it otherwise: nothing a user typed vanishes silently)."""

import inspect

from voxtrainer import log, runtime
from voxtrainer.cli.flags import DEFAULT_NCLASSES, DEFAULT_NPERSPEAKER, PLUGIN_OPTIONS
from voxtrainer.errors import InputError
from voxtrainer.plugins import FLAGS, load_plugin


def head_classes(nClasses, speed_perturb):
    """Classes of the loss head: --speed_perturb gives each speed of a speaker its own class."""
    if not speed_perturb:
        return nClasses
    from voxtrainer.reading.perturb import speed_perturbed_classes
    return speed_perturbed_classes(nClasses)


def resolve_group_sizes(args, loss_class):
    """(softmax classes, utterances per speaker per batch) from the seed's overloaded --nSpeakers."""
    nClasses = args.nClasses or args.nSpeakers or DEFAULT_NCLASSES
    fixed = getattr(loss_class, "utterances_per_speaker", None)
    nPerSpeaker = fixed or args.nPerSpeaker or args.nSpeakers or DEFAULT_NPERSPEAKER
    return nClasses, nPerSpeaker


def resolve_initial_model(args, dist_env):
    """--initial_model as a local file (an http(s) URL downloaded into the cache; see voxtrainer.inference.remote).
    Under --distributed the first process of each machine fetches it while the others wait, then
    find it cached."""
    from voxtrainer.inference.remote import is_url, local_model
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


def modern_options(package, name, **options):
    """The `options` given (not None) that plugin `package/name` takes as named parameters, for its
    constructor; InputError naming the flag when it does not take one, rather than ignoring it."""
    given = {option: value for option, value in options.items() if value is not None}
    taken = named_parameters(load_plugin(package, name))
    for option in given:
        if option not in taken:
            flag = {"lr_scale": "lr_reference_batch"}.get(option, option)
            raise InputError("--%s: %s %s does not take it" % (flag, FLAGS[package], name))
    return given




def named_parameters(entry_point):
    """The keyword names a plugin's entry point takes by name (through every class of its MRO for
    a class, whose __init__ may hand **kwargs to a base that names them)."""
    functions = [cls.__init__ for cls in inspect.getmro(entry_point) if "__init__" in vars(cls)] \
        if inspect.isclass(entry_point) else [entry_point]
    return {name for function in functions for name, parameter in inspect.signature(function).parameters.items()
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)}


def warn_unused_options(explicit, chosen):
    """One warning line for each flag in `explicit` (given by the user) that is an option of a
    plugin kind in `chosen` ({"models": "ResNet34", "loss": "aamsoftmax", ...}) and not a named
    parameter of the chosen plugin: it would otherwise be dropped without a word."""
    for package, name in chosen.items():
        if not name:
            continue
        taken = named_parameters(load_plugin(package, name))
        for option in PLUGIN_OPTIONS[package]:
            if option in explicit and option not in taken:
                log.warning("--%s has no effect: %s %s does not take it" % (option, FLAGS[package], name))


def speed_settings(args, device):
    """The run's precision, layout and cuDNN settings (voxtrainer.precision), applied to torch's
    backends; the lines about options that do not apply here are said once."""
    from voxtrainer.inference.embedder import bf16_native
    from voxtrainer.precision import speed_settings as resolve
    speed = resolve(args.model, device, args.precision, args.mixedprec, args.memory_format, args.cudnn_benchmark,
                    args.compile_mode if args.compile else "default", bf16_native(device))
    for note in speed.notes:
        log.info(note)
    if speed.precision.name == "bf16" and runtime.mixedprec_warning(device):
        log.warning(runtime.mixedprec_warning(device))
    return speed


def build_network(args, nClasses, device, memory_format):
    """The SpeakerNet of the flags on `device`, in `memory_format` and the evaluation precision
    (an exported network is traced from the contiguous layout)."""
    from voxtrainer.network import build_speaker_net
    net = build_speaker_net(model=args.model, trainfunc=args.trainfunc, nOut=args.nOut,
                            encoder_type=args.encoder_type, nClasses=head_classes(nClasses, args.speed_perturb),
                            margin=args.margin, scale=args.scale, hard_rank=args.hard_rank, hard_prob=args.hard_prob,
                            n_mels=args.n_mels, log_input=args.log_input, protocol=args.protocol,
                            channels=args.channels, variant=args.variant, subcenters=args.subcenters,
                            intertopk=args.intertopk, intertopk_margin=args.intertopk_margin).to(device)
    if not args.export:
        net = net.to(memory_format=memory_format)
        net.set_eval_precision(args.eval_precision)
        # The shortest input is the architecture's: probed on these fresh weights, before a checkpoint
        # that might not embed at all replaces them; --eval_frames crops too short are refused here.
        net.check_eval_frames(args.eval_frames)
    return net


def finetune_classes(args, loss_class):
    """--finetune sizes a classifying head for its data: one class per speaker of the train list,
    unless --nClasses (or --nSpeakers) says otherwise."""
    if (args.finetune and loss_class is not None and loss_class.classifies_speakers and args.train_list
            and not (args.nClasses or args.nSpeakers)):
        from voxtrainer.reading.lists import speaker_count
        args.nClasses = speaker_count(args.train_list)
        log.info("--finetune: a loss head of %d classes, one per speaker of %s" % (args.nClasses, args.train_list))
