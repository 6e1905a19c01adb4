"""SpeakerNet: an embedding model (`__S__`) and its training loss (`__L__`), chosen by module name,
with the original's checkpoint format and verification protocol."""

import contextlib
import glob
import importlib
import os

import numpy
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from DatasetLoader import EvalDataset, InputError, TestList, crop_waveform, loadWAV

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def import_by_name(package, name, entry_point, flag):
    """`package/<name>.py`, which must define `entry_point`; InputError listing the valid names."""
    path = os.path.join(PACKAGE_DIR, package, name + ".py")
    if name and os.path.sep not in name and os.path.isfile(path):
        module = importlib.import_module("%s.%s" % (package, name))
        if hasattr(module, entry_point):
            return module
    valid = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(PACKAGE_DIR, package, "*.py"))
                   if "def %s" % entry_point in open(p).read() or "class %s" % entry_point in open(p).read())
    raise InputError("unknown %s %r: valid names are %s (%s/<name>.py)" % (flag, name, ", ".join(valid), package))


@contextlib.contextmanager
def atomic_output(path):
    """A temporary name beside `path` to write to: renamed to `path` when the block ends normally,
    removed when it raises, so a crash never leaves a truncated file at `path`."""
    temporary = "%s.tmp%d" % (path, os.getpid())
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_torch_save(obj, path):
    with atomic_output(path) as temporary:
        torch.save(obj, temporary)


def preferred_memory_format(device):
    """Layout for the conv weights (and so activations) on `device`: channels_last on CPU, where
    oneDNN's NHWC convolutions made the train step 15-20% faster (ResNetSE34L, VGGVox, ResNetSE34
    at 64 x 200 frames) and the embedding 8-15% faster, per CPU second on an AVX2 EPYC; the default
    layout elsewhere (not measured there). Checkpoints are saved contiguous either way."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def cpu_flags():
    """The instruction-set flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16():
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 with BF16, or AMX). Without it (e.g.
    an AVX2-only CPU) bf16 autocast is emulated and several times slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def pairwise_crop_scores(enrol, test, chunk=4096):
    """The original trial score: -mean over crop pairs (i, j) of ||enrol_i - test_j + 1e-6||.

    enrol, test: (trials, crops, dim). The 1e-6 is the eps torch's pairwise_distance adds to
    the difference; direct (non-matmul) distances keep float32 results equal to the original."""
    scores = []
    for first in range(0, enrol.shape[0], chunk):
        distances = torch.cdist(enrol[first:first + chunk] + 1e-6, test[first:first + chunk],
                                compute_mode="donot_use_mm_for_euclid_dist")
        scores.append(-distances.mean(dim=(1, 2)))
    return torch.cat(scores) if scores else torch.zeros(0)


class SpeakerNet(nn.Module):
    def __init__(self, model, trainfunc, nOut=512, encoder_type="SAP", nClasses=5994, **kwargs):
        super().__init__()
        model_module = import_by_name("models", model, "MainModel", "--model")
        loss_module = import_by_name("loss", trainfunc, "LossFunction", "--trainfunc")
        self.__S__ = model_module.MainModel(nOut=nOut, encoder_type=encoder_type, **kwargs)
        self.__L__ = loss_module.LossFunction(nOut=nOut, nClasses=nClasses, **kwargs)
        self.train_normalize = loss_module.LossFunction.train_normalize
        self.test_normalize = loss_module.LossFunction.test_normalize

    @property
    def device(self):
        return next(self.parameters()).device

    # -- training ---------------------------------------------------------------------------

    def forward(self, data, label):
        """data (batch, nPerSpeaker, samples) -> (loss, metric).

        As the original, each utterance position is its own forward pass, so BatchNorm
        statistics are per position."""
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
        eval_frames is 0). Fixed-length crops of several files share one forward pass: by default
        40 crops on a GPU, 20 on the CPU, where 40 crops' activations outgrow the caches (20 measured
        ~15% faster than 40 with ResNetSE34L, benchmark.py)."""
        self.eval()
        if crops_per_batch is None:
            crops_per_batch = 20 if self.device.type == "cpu" else 40
        files_per_batch = max(1, crops_per_batch // num_eval) if eval_frames > 0 else 1
        loader = torch.utils.data.DataLoader(EvalDataset(paths, eval_frames, num_eval), batch_size=files_per_batch,
                                             num_workers=num_workers, collate_fn=torch.stack)
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
        """One embedding (nOut,) for a 16 kHz file path or a 1-D int16-range waveform: the mean of
        its eval-crop embeddings (each normalised when the loss scores normalised embeddings), the
        crops being those evaluation cuts (eval_frames 0: the whole audio as one crop)."""
        if isinstance(waveform_or_path, (str, os.PathLike)):
            crops = loadWAV(os.fspath(waveform_or_path), eval_frames, evalmode=True, num_eval=num_eval)
        else:
            waveform = numpy.asarray(waveform_or_path, dtype=numpy.float32).reshape(-1)
            crops = crop_waveform(waveform, eval_frames, evalmode=True, num_eval=num_eval)
        self.eval()
        return self.embed_crops(crops).mean(dim=0).cpu()

    # -- evaluation -------------------------------------------------------------------------

    def evaluateFromList(self, listfilename, test_path="", eval_frames=300, num_eval=10, num_workers=0,
                         progress=True, print_interval=None, return_embeddings=False):
        """The original protocol: every unique file of the `label enrol test` list is embedded
        from its eval crops; a trial scores -mean of the crop-pair L2 distances.
        Returns (scores, labels, trials) in list order, and with return_embeddings also
        (files, embeddings (files, crops, nOut)) for score normalisation. Under torch.distributed
        each rank embeds a shard of the files and every rank gets all scores."""
        test_list = TestList(listfilename, test_path)
        paths = [os.path.join(test_path, name) for name in test_list.files]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            rank, world = dist.get_rank(), dist.get_world_size()
            shard = self.embed_files(paths[rank::world], eval_frames, num_eval, num_workers, progress=progress)
            shards = [None] * world
            dist.all_gather_object(shards, shard)
            embeddings = torch.empty(len(paths), *max(shards, key=len).shape[1:])
            for rank_index, part in enumerate(shards):
                if len(part):  # a rank gets no files when there are fewer files than ranks
                    embeddings[rank_index::world] = part
        else:
            embeddings = self.embed_files(paths, eval_frames, num_eval, num_workers, progress=progress)

        index = {name: position for position, name in enumerate(test_list.files)}
        enrol = torch.tensor([index[a] for a, _ in test_list.trials], dtype=torch.long)
        test = torch.tensor([index[b] for _, b in test_list.trials], dtype=torch.long)
        scores = pairwise_crop_scores(embeddings[enrol], embeddings[test])
        trials = ["%s %s" % trial for trial in test_list.trials]
        if return_embeddings:
            return scores.tolist(), test_list.labels, trials, (test_list.files, embeddings)
        return scores.tolist(), test_list.labels, trials

    # -- checkpoints ------------------------------------------------------------------------

    def saveParameters(self, path):
        """The original format: this module's state_dict (`__S__.*`, `__L__.*`), contiguous
        tensors whatever the in-memory layout (channels_last on CPU)."""
        atomic_torch_save({name: value.contiguous() for name, value in self.state_dict().items()}, path)

    def loadParameters(self, path):
        """Load an original or project checkpoint (a `module.` prefix is accepted).

        Every `__S__` tensor must be present and of the right shape: anything else is an
        InputError naming the file and the first mismatches. A loss head that does not fit
        (e.g. evaluating with another --trainfunc) keeps its initial values, with a warning,
        as the original did."""
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InputError("%s: checkpoint not found" % path)
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise InputError("%s: not a readable checkpoint (%s)" % (path, first))
        if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
            raise InputError("%s: not a state_dict checkpoint of tensors" % path)

        loaded = {name[len("module."):] if name.startswith("module.") else name: value
                  for name, value in loaded.items()}
        own = self.state_dict()
        problems = {"missing": [], "unexpected": [], "mis-shaped": []}
        for name in own:
            if name not in loaded:
                problems["missing"].append(name)
        for name, value in loaded.items():
            if name not in own:
                problems["unexpected"].append(name)
            elif own[name].shape != value.shape:
                problems["mis-shaped"].append("%s %s, model wants %s" % (
                    name, tuple(value.shape), tuple(own[name].shape)))

        model_problems = {kind: [n for n in names if n.startswith("__S__.")] for kind, names in problems.items()}
        if any(model_problems.values()):
            details = "; ".join("%s: %s" % (kind, ", ".join(names[:3]) + (" ..." if len(names) > 3 else ""))
                                for kind, names in model_problems.items() if names)
            raise InputError("%s: does not fit this --model/--encoder_type/--nOut (%s)" % (path, details))
        loss_problems = [name.split(" ")[0] for names in problems.values() for name in names]
        if loss_problems:
            print("WARNING: %s: loss-head parameters do not fit --trainfunc/--nClasses (%s); they keep their "
                  "initial values (evaluation does not use them)" % (path, ", ".join(loss_problems[:4])))
        with torch.no_grad():
            for name, value in loaded.items():
                if name in own and own[name].shape == value.shape:
                    own[name].copy_(value)
