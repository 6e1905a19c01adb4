"""SpeakerNet: an embedding network (`__S__`) and its training loss (`__L__`), chosen by module
name, with the original's checkpoint format and the seed's public methods."""

import os

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from voxtrainer import checkpoints
from voxtrainer.audio import check_protocol, crop_waveform, loadWAV
from voxtrainer.datasets import EvalDataset
from voxtrainer.plugins import load_plugin, model_protocol


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

    @torch.no_grad()
    def embed_crops(self, crops):
        """(crops, samples) -> (crops, nOut), normalised when the loss scores normalised embeddings."""
        out = self.__S__(crops.to(self.device)).float()
        return F.normalize(out, p=2, dim=1) if self.test_normalize else out

    @torch.no_grad()
    def embed_files(self, paths, eval_frames, num_eval=10, num_workers=0, crops_per_batch=None, progress=True):
        """Eval-crop embeddings of each file: (files, crops, nOut) on the CPU (crops = 1 when
        eval_frames is 0). Fixed-length crops of several files share one forward pass: 40 crops on
        a GPU, 20 on the CPU, where 40 crops' activations outgrow the caches (README, Performance)."""
        self.eval()
        if crops_per_batch is None:
            crops_per_batch = 20 if self.device.type == "cpu" else 40
        files_per_batch = max(1, crops_per_batch // num_eval) if eval_frames > 0 else 1
        loader = torch.utils.data.DataLoader(EvalDataset(paths, eval_frames, num_eval, self.protocol),
                                             batch_size=files_per_batch, num_workers=num_workers,
                                             collate_fn=torch.stack)
        embeddings = []
        for crops in tqdm(loader, desc="Embedding", unit="batch", disable=not progress, leave=False):
            files, per_file, samples = crops.shape
            out = self.embed_crops(crops.reshape(files * per_file, samples))
            embeddings.append(out.reshape(files, per_file, -1).cpu())
        if not embeddings:
            return torch.zeros(0, 1 if eval_frames == 0 else num_eval, 0)
        return torch.cat(embeddings)

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
