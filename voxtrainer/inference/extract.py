"""--extract: one embedding per audio file of a list, for use outside the trainer."""

import os

import numpy

from voxtrainer import log
from voxtrainer.atomic import check_writable, save_npz
from voxtrainer.reading.lists import read_path_list


def extract_embeddings(net, checkpoint, extract_list, root, eval_frames, out, with_crops=False, num_workers=0):
    """Write `out` (.npz): `files` (as listed), `embeddings` (files, nOut): the mean of each file's
    eval-crop embeddings (normalised when the loss scores normalised embeddings), and with
    `with_crops` also `crop_embeddings` (files, crops, nOut)."""
    names = read_path_list(extract_list, root, "--test_path", "extract list")
    check_writable(out, "--extract_out")
    net.loadParameters(checkpoint)
    log.info("Model %s loaded!" % checkpoint)
    crops = net.embed_files([os.path.join(root, name) for name in names], eval_frames, num_workers=num_workers)
    arrays = {"files": numpy.array(names), "embeddings": crops.mean(dim=1).numpy()}
    if with_crops:
        arrays["crop_embeddings"] = crops.numpy()
    save_npz(out, **arrays)
    log.info("Wrote %d embeddings of size %d (%d crop(s) each) to %s" % (
        len(names), crops.shape[2], crops.shape[1], out))
