"""--extract: one embedding per audio file of a list, for use outside the trainer."""

import os

import numpy

from DatasetLoader import InputError, read_list
from SpeakerNet import atomic_output


def read_extract_list(extract_list, root):
    """Paths relative to `root`, one per line (a train list's `speaker path` lines work too).
    Every missing file is named, so one run finds them all."""
    rows = read_list(extract_list, fields=(1, 2), what="extract list")
    names = [parts[-1] for _, parts in rows]
    missing = ["%s (line %d)" % (name, number) for (number, _), name in zip(rows, names)
               if not os.path.isfile(os.path.join(root, name))]
    if missing:
        raise InputError("%s: %d listed audio file(s) not found under --test_path %s: %s" % (
            extract_list, len(missing), root, ", ".join(missing)))
    return names


def save_npz(path, **arrays):
    """numpy.savez via a temporary file, so `path` is never half-written."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        numpy.savez(handle, **arrays)  # a handle, not a name: savez would append .npz to a name


def run_extract(net, args):
    """Write --extract_out: `files` (as listed), `embeddings` (files, nOut): the mean of each file's
    eval-crop embeddings (normalised when the loss scores normalised embeddings), and with
    --extract_crops `crop_embeddings` (files, crops, nOut)."""
    for flag, value in (("--initial_model", args.initial_model), ("--extract_list", args.extract_list),
                        ("--extract_out", args.extract_out)):
        if not value:
            raise InputError("--extract needs %s" % flag)
    names = read_extract_list(args.extract_list, args.test_path)
    net.loadParameters(args.initial_model)
    print("Model %s loaded!" % args.initial_model)
    crops = net.embed_files([os.path.join(args.test_path, name) for name in names], args.eval_frames,
                            num_workers=args.nDataLoaderThread)
    arrays = {"files": numpy.array(names), "embeddings": crops.mean(dim=1).numpy()}
    if args.extract_crops:
        arrays["crop_embeddings"] = crops.numpy()
    save_npz(args.extract_out, **arrays)
    print("Wrote %d embeddings of size %d (%d crop(s) each) to %s" % (
        len(names), crops.shape[2], crops.shape[1], args.extract_out))
