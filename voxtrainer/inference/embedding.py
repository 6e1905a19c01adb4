"""Embeddings of a SpeakerNet: of crops, of one waveform or file, and of whole lists of files
(--eval, validation during training, --extract, score-normalisation cohorts). Files are read and
cut by loader processes ahead of the network, and the crops of consecutive files share forward
passes; every crop goes through voxtrainer.inference.embedder."""

import os

import numpy
import torch
from tqdm import tqdm

from voxtrainer.inference.embedder import embedder_for, loader_processes, prefetch_factor, unique_crops
from voxtrainer.reading.audio import crop_waveform, read_audio
from voxtrainer.reading.datasets import EvalDataset
from voxtrainer.reading.input_length import check_whole_file

# Crops per forward pass of evaluation on CUDA: 20 files of 10 crops of the seed's --eval; tools/gpu_check
# times whole lists at this size.
CUDA_CROPS_PER_BATCH = 200


@torch.no_grad()
def embed_crops(net, crops, embedder=None):
    """(crops, samples) -> (crops, nOut), normalised when the loss scores normalised embeddings,
    by `embedder` (default: net's eager one). Runs of identical consecutive crops are embedded once."""
    embedder = embedder or embedder_for(net, fast=False)
    unique, index = unique_crops(crops)
    out = embedder(unique)
    return out if unique.shape[0] == crops.shape[0] else out[index.to(out.device)]


@torch.no_grad()
def embed_files(net, paths, eval_frames, num_eval=10, num_workers=0, crops_per_batch=None, progress=True, embed=None):
    """Eval-crop embeddings of each file: (files, crops, nOut) on the CPU (crops = 1 when
    eval_frames is 0). Loader processes (embedder.loader_processes: on the CPU one for crops,
    none for whole files) read and crop the files ahead of the network and send each file's
    distinct crops (a file no longer than one crop has one); the crops of consecutive
    files share forward passes of `crops_per_batch`: CUDA_CROPS_PER_BATCH on a GPU (larger passes,
    fewer launches; the loader pins the batches, so their copies run asynchronously), 20 on the CPU,
    where 40 crops' activations outgrow the caches (README, Performance). Whole files (eval_frames 0)
    of different lengths each take their own pass. `embed` (crops -> embeddings) replaces the net's
    own embedder (a benchmark's stand-in network)."""
    net.eval()
    if embed is None:
        embedder = embedder_for(net, fast=True)

        def embed(crops):
            return embed_crops(net, crops, embedder)
    device = net.device
    if crops_per_batch is None:
        crops_per_batch = 20 if device.type == "cpu" else CUDA_CROPS_PER_BATCH
    per_file = 1 if eval_frames == 0 else num_eval
    shortest = net.check_eval_frames(eval_frames)
    num_workers = loader_processes(device, eval_frames, num_workers)
    dataset = EvalDataset(paths, eval_frames, num_eval, net.protocol, shortest, net.model_name)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=num_workers, pin_memory=device.type == "cuda",
        prefetch_factor=prefetch_factor(crops_per_batch, num_workers) if num_workers > 0 else None)
    outputs, indices, pending, pending_count, total = [], [], [], 0, 0

    def forward(count):
        nonlocal pending, pending_count
        crops = torch.cat(pending) if len(pending) > 1 else pending[0]
        outputs.append(embed(crops[:count]).cpu())
        pending = [crops[count:]] if count < crops.shape[0] else []
        pending_count -= count

    with tqdm(total=len(paths), desc="Embedding", unit="file", disable=not progress, leave=False) as bar:
        for unique, index in loader:
            if pending and unique.shape[1] != pending[0].shape[1]:
                forward(pending_count)  # crops of another length cannot share a pass
            indices.append(index + total)
            total += unique.shape[0]
            pending.append(unique)
            pending_count += unique.shape[0]
            while pending_count >= crops_per_batch:
                forward(crops_per_batch)
            bar.update(1)
    if pending_count:
        forward(pending_count)
    if not indices:
        return torch.zeros(0, per_file, 0)
    return torch.cat(outputs)[torch.stack(indices)]


@torch.no_grad()
def embed(net, waveform_or_path, eval_frames=0, num_eval=10):
    """One embedding (nOut,) for a 16 kHz file path or a 1-D int16-range waveform (whatever the
    protocol: the 2021 one scales it as it scales files): the mean of its eval-crop embeddings
    (each normalised when the loss scores normalised embeddings), the crops being those evaluation
    cuts (eval_frames 0: the whole audio as one crop)."""
    is_path = isinstance(waveform_or_path, (str, os.PathLike))
    if is_path:
        waveform = read_audio(os.fspath(waveform_or_path))
    else:
        waveform = numpy.asarray(waveform_or_path, dtype=numpy.float32).reshape(-1)
    shortest = net.check_eval_frames(eval_frames)
    if eval_frames == 0:
        check_whole_file(os.fspath(waveform_or_path) if is_path else "the waveform", waveform.shape[0],
                         net.protocol, shortest, net.model_name)
    crops = crop_waveform(waveform, eval_frames, evalmode=True, num_eval=num_eval, protocol=net.protocol)
    net.eval()
    return embed_crops(net, crops).mean(dim=0).cpu()
