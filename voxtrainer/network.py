"""SpeakerNet: an embedding network (`__S__`) and its training loss (`__L__`), chosen by module
name, with the original's checkpoint format and the seed's public methods."""

import os

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from voxtrainer import checkpoints, inference
from voxtrainer.audio import check_protocol, crop_waveform, loadWAV
from voxtrainer.datasets import EvalDataset
from voxtrainer.plugins import load_plugin, model_protocol

# Crops per forward pass of evaluation on CUDA: 20 files of 10 crops of the seed's --eval; tools/gpu_check
# times whole lists at this size.
CUDA_CROPS_PER_BATCH = 200


class SpeakerNet(nn.Module):
    """`protocol` is how audio is read and fed for this network (voxtrainer/audio.py), in training,
    evaluation and extraction alike: "2020" or "2021", default the model file's PROTOCOL. Under
    "2021" a training batch also goes through the network in one forward pass (all utterance
    positions together, as the 2021 trainer did), which BatchNorm's batch statistics see."""

    def __init__(self, model, trainfunc=None, nOut=512, encoder_type="SAP", nClasses=5994, protocol=None, **kwargs):
        super().__init__()
        self.protocol = check_protocol(protocol or model_protocol(model))
        self.__S__ = load_plugin("models", model)(nOut=nOut, encoder_type=encoder_type, **kwargs)
        if not trainfunc:
            # The embedding network alone (--eval/--extract/--export of a checkpoint, e.g. a
            # WeSpeaker one): its embeddings as they come out, scored by cosine (voxtrainer.evaluation).
            self.__L__ = None
            self.train_normalize = self.test_normalize = False
            return
        loss_class = load_plugin("loss", trainfunc)
        self.__L__ = loss_class(nOut=nOut, nClasses=nClasses, **kwargs)
        self.train_normalize = loss_class.train_normalize
        self.test_normalize = loss_class.test_normalize

    @property
    def device(self):
        return next(self.parameters()).device

    def forward(self, data, label):
        """data (batch, nPerSpeaker, samples) -> (loss, metric).

        As the 2020 original, each utterance position is its own forward pass, so BatchNorm
        statistics are per position; the 2021 protocol passes them all at once."""
        if self.protocol == "2021":
            batch, positions = data.shape[:2]
            # Position-major, as the 2021 trainer's transpose and reshape ordered the batch.
            out = self.__S__(data.transpose(0, 1).reshape(batch * positions, -1))
            if self.train_normalize:
                out = F.normalize(out, p=2, dim=1)
            feat = out.reshape(positions, batch, -1).transpose(0, 1)
            return self.__L__(feat[:, 0] if positions == 1 else feat, label)
        feats = []
        for position in range(data.shape[1]):
            out = self.__S__(data[:, position])
            if self.train_normalize:
                out = F.normalize(out, p=2, dim=1)
            feats.append(out)
        feat = torch.stack(feats, dim=1)
        if feat.shape[1] == 1:
            feat = feat[:, 0]
        return self.__L__(feat, label)

    # -- embeddings -------------------------------------------------------------------------
    # Every embedding is computed by embed_crops, through voxtrainer.inference: a traced and frozen
    # graph of __S__ on the CPU (eager numbers to ~1e-6), eager elsewhere or when that fails.

    def set_eval_precision(self, precision):
        """'fp32' (default) or 'bf16' (autocast, only where native; changes the scores, and says so)."""
        inference.set_precision(self, precision)

    @torch.no_grad()
    def embed_crops(self, crops):
        """(crops, samples) -> (crops, nOut), normalised when the loss scores normalised embeddings.
        Runs of identical consecutive crops are embedded once."""
        unique, index = inference.unique_crops(crops)
        out = inference.embedder(self)(unique)
        return out if unique.shape[0] == crops.shape[0] else out[index.to(out.device)]

    @torch.no_grad()
    def embed_files(self, paths, eval_frames, num_eval=10, num_workers=0, crops_per_batch=None, progress=True):
        """Eval-crop embeddings of each file: (files, crops, nOut) on the CPU (crops = 1 when
        eval_frames is 0). Loader processes (inference.loader_processes: on the CPU one for crops,
        none for whole files) read and crop the files ahead of the network and send each file's
        distinct crops (a file no longer than one crop has one); the crops of consecutive
        files share forward passes of `crops_per_batch`: CUDA_CROPS_PER_BATCH on a GPU (larger passes,
        fewer launches; the loader pins the batches, so their copies run asynchronously), 20 on the
        CPU, where 40 crops' activations outgrow the caches (README, Performance). Whole files (eval_frames 0) of different
        lengths each take their own pass."""
        self.eval()
        inference.refresh(self)
        if crops_per_batch is None:
            crops_per_batch = 20 if self.device.type == "cpu" else CUDA_CROPS_PER_BATCH
        per_file = 1 if eval_frames == 0 else num_eval
        num_workers = inference.loader_processes(self.device, eval_frames, num_workers)
        loader = torch.utils.data.DataLoader(
            EvalDataset(paths, eval_frames, num_eval, self.protocol), batch_size=None, num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=inference.prefetch_factor(crops_per_batch, num_workers) if num_workers > 0 else None)
        outputs, indices, pending, pending_count, total = [], [], [], 0, 0

        def forward(count):
            nonlocal pending, pending_count
            crops = torch.cat(pending) if len(pending) > 1 else pending[0]
            outputs.append(self.embed_crops(crops[:count]).cpu())
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
    def embed(self, waveform_or_path, eval_frames=0, num_eval=10):
        """One embedding (nOut,) for a 16 kHz file path or a 1-D int16-range waveform (whatever the
        protocol: the 2021 one scales it as it scales files): the mean of
        its eval-crop embeddings (each normalised when the loss scores normalised embeddings), the
        crops being those evaluation cuts (eval_frames 0: the whole audio as one crop)."""
        if isinstance(waveform_or_path, (str, os.PathLike)):
            crops = loadWAV(os.fspath(waveform_or_path), eval_frames, evalmode=True, num_eval=num_eval,
                            protocol=self.protocol)
        else:
            waveform = numpy.asarray(waveform_or_path, dtype=numpy.float32).reshape(-1)
            crops = crop_waveform(waveform, eval_frames, evalmode=True, num_eval=num_eval,
                                  protocol=self.protocol)
        self.eval()
        return self.embed_crops(crops).mean(dim=0).cpu()

    def evaluateFromList(self, listfilename, test_path="", eval_frames=300, num_eval=10, num_workers=0,
                         progress=True, print_interval=None):
        """The seed's method: (scores, labels, trials) of a `label enrol test` list, in list order
        (voxtrainer.evaluation.evaluate_list has the whole record)."""
        from voxtrainer.evaluation import evaluate_list
        result = evaluate_list(self, listfilename, test_path, eval_frames, num_eval, num_workers, progress)
        return result.scores, result.labels, result.trials

    # -- checkpoints ------------------------------------------------------------------------

    def saveParameters(self, path):
        checkpoints.save_state_dict(self, path)

    def loadParameters(self, path):
        """An original or project checkpoint (voxtrainer.checkpoints.load_parameters's policy)."""
        checkpoints.load_parameters(self, path)
