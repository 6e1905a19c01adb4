"""The modes that write a file from checkpoints: --extract (embeddings), --export (ONNX or
TorchScript), --average_last (one averaged model)."""

from voxtrainer.errors import InputError


def extract_mode(args, net, dist_env):
    from voxtrainer.inference.extract import extract_embeddings
    for flag, value in (("--initial_model", args.initial_model), ("--extract_list", args.extract_list),
                        ("--extract_out", args.extract_out)):
        if not value:
            raise InputError("--extract needs %s" % flag)
    extract_embeddings(net, args.initial_model, args.extract_list, args.test_path, args.eval_frames,
                       args.extract_out, args.extract_crops, args.nDataLoaderThread)


def export_mode(args, net, dist_env):
    from voxtrainer.inference.export import export_checkpoint
    if not args.initial_model:
        raise InputError("--export needs --initial_model (the checkpoint to export)")
    if not args.export_out:
        raise InputError("--export needs --export_out FILE (e.g. model.onnx or model.pt)")
    export_checkpoint(net, args.initial_model, args.export, args.export_out)


def average_mode(args):
    from voxtrainer.checkpoints import average_last
    from voxtrainer.experiment import ExperimentFolder
    average_last(ExperimentFolder(args.save_path), args.average_last)
