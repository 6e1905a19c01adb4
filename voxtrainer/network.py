"""SpeakerNet: an embedding network (`__S__`) and its training loss (`__L__`), chosen by module
name, with the original's checkpoint format and the seed's public methods. It is only the network:
embeddings are computed by voxtrainer.inference.embedding, lists scored by voxtrainer.scoring, and
the methods of those names here are thin calls into them."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from voxtrainer import checkpoints
from voxtrainer.errors import InputError, first_line, out_of_memory_line
from voxtrainer.reading.input_length import check_crop_frames, shortest_input
from voxtrainer.plugins import load_plugin, model_protocol
from voxtrainer.reading.audio import check_protocol

SIZE_OPTIONS = ("nOut", "n_mels", "channels", "nClasses")  # the options that size a network's layers


class SpeakerNet(nn.Module):
    """`protocol` is how audio is read and fed for this network (voxtrainer/reading/audio.py), in training,
    evaluation and extraction alike: "2020" or "2021", default the model file's PROTOCOL. Under
    "2021" a training batch also goes through the network in one forward pass (all utterance
    positions together, as the 2021 trainer did), which BatchNorm's batch statistics see."""

    def __init__(self, model, trainfunc=None, nOut=512, encoder_type="SAP", nClasses=5994, protocol=None, **kwargs):
        super().__init__()
        self.protocol = check_protocol(protocol or model_protocol(model))
        self.eval_precision = "fp32"  # of every embedding (set_eval_precision)
        self.model_name, self.shortest = model, None  # shortest: found on first use (shortest_input)
        self.__S__ = load_plugin("models", model)(nOut=nOut, encoder_type=encoder_type, **kwargs)
        if not trainfunc:
            # The embedding network alone (--eval/--extract/--export of a checkpoint, e.g. a
            # WeSpeaker one): its embeddings as they come out, scored by cosine (voxtrainer.scoring.evaluation).
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

    # -- embeddings (voxtrainer.inference.embedding computes them; these are the seed-style calls) --

    def set_eval_precision(self, precision):
        """'fp32' (default) or 'bf16' (autocast, only where native; changes the scores, and says so)."""
        from voxtrainer.inference.embedder import announce_precision
        announce_precision(precision, self.device)
        self.eval_precision = precision

    def embed_crops(self, crops):
        from voxtrainer.inference.embedding import embed_crops
        return embed_crops(self, crops)

    def embed_files(self, paths, eval_frames, num_eval=10, num_workers=0, crops_per_batch=None, progress=True):
        from voxtrainer.inference.embedding import embed_files
        return embed_files(self, paths, eval_frames, num_eval, num_workers, crops_per_batch, progress)

    def embed(self, waveform_or_path, eval_frames=0, num_eval=10):
        from voxtrainer.inference.embedding import embed
        return embed(self, waveform_or_path, eval_frames, num_eval)

    # -- the shortest input ----------------------------------------------------------------------

    def shortest_input(self):
        """The fewest samples __S__ embeds (voxtrainer.reading.input_length.shortest_input), found once."""
        if self.shortest is None:
            self.shortest = shortest_input(self.__S__, "--model %s" % self.model_name)
        return self.shortest

    def check_eval_frames(self, eval_frames, flag="--eval_frames"):
        """InputError naming `flag` when eval crops of `eval_frames` frames are too short for __S__;
        the shortest input in samples otherwise."""
        shortest = self.shortest_input()
        check_crop_frames(eval_frames, flag, shortest, self.model_name)
        return shortest

    def evaluateFromList(self, listfilename, test_path="", eval_frames=300, num_eval=10, num_workers=0,
                         progress=True, print_interval=None):
        """The seed's method: (scores, labels, trials) of a `label enrol test` list, in list order
        (voxtrainer.scoring.evaluation.evaluate_list has the whole record)."""
        from voxtrainer.scoring.evaluation import evaluate_list
        result = evaluate_list(self, listfilename, test_path, eval_frames, num_eval, num_workers, progress)
        return result.scores, result.labels, result.trials

    # -- checkpoints ------------------------------------------------------------------------

    def saveParameters(self, path):
        checkpoints.save_state_dict(self, path)

    def loadParameters(self, path):
        """An original or project checkpoint (voxtrainer.checkpoints.load_parameters's policy)."""
        checkpoints.load_parameters(self, path)


def build_speaker_net(model, **options):
    """SpeakerNet(model, **options) for the command line: a model's refusal of an option (ValueError,
    e.g. an unknown --encoder_type) or a size beyond the machine's memory (a huge --nOut or
    --channels) is an InputError."""
    try:
        return SpeakerNet(model, **options)
    except ValueError as error:
        raise InputError(str(error))
    except (RuntimeError, MemoryError) as error:
        sizes = ", ".join("--%s %s" % (name, options[name]) for name in SIZE_OPTIONS if name in options)
        raise InputError("--model %s cannot be built with %s: %s" % (
            model, sizes or "these options", out_of_memory_line(error) or first_line(error, type(error).__name__)))
