"""Reference values of the 2021 voxceleb_trainer (revision 71c4c36) for tests/test_trainer2021.py.

    git --git-dir=<mirror of clovaai/voxceleb_trainer> archive 71c4c36 | tar -x -C /tmp/orig2021
    python tools/reference_2021.py /tmp/orig2021 tests/data/original2021.json

The 2021 code runs unmodified in this process (its folder first on sys.path), on the CPU through
run-time patches (`.cuda()` a no-op, numpy's removed `numpy.float` restored, F.pairwise_distance
with the torch of its time's semantics, as tools/compare_original.py does) and with a stand-in
`torchaudio` whose MelSpectrogram is models/frontend.py's (equal to torchaudio's: tests/test_frontend.py).
For each setting it builds a SpeakerNet, gives every weight a value from `seeded_weights` (a fixed
function of the key name, so that the test rebuilds the same checkpoint without storing megabytes
of weights), saves it with its own saveParameters, reloads that file and scores a list of the
`make_wavs` files with its own evaluateFromList; the JSON keeps the checkpoint's key names and
shapes, checksums of its front-end buffers, the scores, the EER of its tuneThresholdfromScore and
a few raw embeddings.

The data and weight generators below are also what the test imports: one definition for both sides.
"""

import hashlib
import json
import os
import sys
import zlib

import numpy

# name -> SpeakerNet settings of the 2021 code; evaluations as (eval_frames, num_eval).
SETTINGS = {
    "v2_asp64": dict(model="ResNetSE34V2", encoder_type="ASP", n_mels=64, log_input=True, nOut=512,
                     trainfunc="softmaxproto", nClasses=5994, evals=[(100, 4), (0, 4), (400, 10)]),
    "v2_sap40_nolog": dict(model="ResNetSE34V2", encoder_type="SAP", n_mels=40, log_input=False, nOut=256,
                           trainfunc="softmaxproto", nClasses=5994, evals=[(100, 4)]),
    "l_sap40": dict(model="ResNetSE34L", encoder_type="SAP", n_mels=40, log_input=True, nOut=512,
                    trainfunc="angleproto", nClasses=5994, evals=[(100, 4)]),
    "l_asp64_nolog": dict(model="ResNetSE34L", encoder_type="ASP", n_mels=64, log_input=False, nOut=128,
                          trainfunc="softmax", nClasses=20, evals=[(100, 4)]),
}

# Samples per file: with 100-frame crops (16,240 samples) the first two are wrap-padded (the
# second has exactly one crop's length), with 400-frame crops (64,240) all but the last.
WAV_LENGTHS = (12000, 16240, 21000, 26000, 70000)


def wav_names():
    return ["spk%d/utt%d.wav" % (index % 2, index) for index in range(len(WAV_LENGTHS))]


def triangle(t, period):
    """An integer triangle wave of `period` samples, amplitude period // 2 around 0."""
    phase = t % period
    return numpy.minimum(phase, period - phase) - period // 4


def wav_samples(index):
    """File `index`'s int16 samples: two triangle tones of per-file periods, gated on and off in
    per-file rhythms, over smoothed noise. Integer arithmetic only, so the files are the same
    everywhere; distinct spectra, so that the embeddings of the files differ."""
    rng = numpy.random.default_rng(index)
    length = WAV_LENGTHS[index]
    t = numpy.arange(length, dtype=numpy.int64)
    low, high = int(rng.integers(40, 160)), int(rng.integers(8, 40))
    gate = (t // int(rng.integers(800, 4000))) % 2
    tones = triangle(t, low) * (6000 // low) + gate * triangle(t, high) * (4000 // high)
    width = 2 + 3 * index
    noise = rng.integers(-3000, 3001, length + width, dtype=numpy.int64)
    running = numpy.concatenate([[0], numpy.cumsum(noise)])
    smooth = (running[width:] - running[:-width])[:length] // width
    return numpy.clip(tones * 2 + smooth, -32768, 32767).astype(numpy.int16)


def make_wavs(folder):
    """The test files under `folder` and `folder/trials.txt` (every pair, target when both names
    share a speaker folder); returns the list's path."""
    import soundfile
    names = wav_names()
    for index, name in enumerate(names):
        os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
        soundfile.write(os.path.join(folder, name), wav_samples(index), 16000, subtype="PCM_16")
    lines = ["%d %s %s\n" % (int(a.split("/")[0] == b.split("/")[0]), a, b)
             for i, a in enumerate(names) for b in names[i + 1:]]
    path = os.path.join(folder, "trials.txt")
    with open(path, "w") as handle:
        handle.writelines(lines)
    return path


def seeded_weights(state):
    """{name: tensor} -> new float tensors for every float entry except the front-end buffers
    (`torchfb.*`, which the model computes): each a fixed function of its name and shape, of the
    scale a trained network has (fan-in scaled weights, BatchNorm statistics near 0 and 1)."""
    import torch
    filled = {}
    for name, value in state.items():
        if not value.is_floating_point() or ".torchfb." in "." + name:
            continue
        rng = numpy.random.default_rng(zlib.crc32(name.encode()))
        shape = tuple(value.shape)
        normal = rng.standard_normal(shape)
        if name.endswith("running_var"):
            values = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("running_mean") or (name.endswith("bias") and len(shape) == 1):
            values = 0.1 * normal
        elif name.endswith("weight") and len(shape) == 1:  # BatchNorm scale
            values = 1.0 + 0.1 * normal
        elif len(shape) == 0:  # angleproto's scale and offset
            values = value.double().numpy() + 0.1 * normal
        else:
            values = normal / numpy.sqrt(max(1, int(numpy.prod(shape[1:]))))
        filled[name] = torch.from_numpy(numpy.asarray(values, dtype=numpy.float32).reshape(shape))
    return filled


def buffer_checksum(tensor):
    values = tensor.double().flatten()
    return [float(values.sum()), float((values * values).sum())]


def key_list(state):
    return [[name, list(value.shape)] for name, value in state.items()]


def key_digest(keys):
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Running the 2021 code

def load_by_path(name, path):
    """A project module loaded from its file, without putting the project on sys.path (the 2021
    code's own `models` and `loss` packages must stay the ones `import models` finds)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchaudio_standin(root):
    """A `torchaudio` module whose transforms.MelSpectrogram is models/frontend.py's (loaded by
    path: the 2021 code's own `models` package must stay the one `import models` finds)."""
    import types
    frontend = load_by_path("_project_frontend", os.path.join(root, "models", "frontend.py"))

    class MelSpectrogram(frontend.MelSpectrogram):
        def __init__(self, sample_rate=16000, n_fft=400, win_length=None, hop_length=None, f_min=0.0,
                     f_max=None, pad=0, n_mels=128, window_fn=None):
            if (sample_rate, n_fft, win_length, hop_length, pad, f_min) != (16000, 512, 400, 160, 0, 0.0):
                raise NotImplementedError("the torchaudio stand-in has only the original's STFT settings")
            extra = {} if window_fn is None else {"window_fn": window_fn}
            super().__init__(n_mels=n_mels, sample_rate=sample_rate, f_min=f_min,
                             f_max=sample_rate / 2 if f_max is None else f_max, **extra)

    module = types.ModuleType("torchaudio")
    module.transforms = types.SimpleNamespace(MelSpectrogram=MelSpectrogram)
    return module


def run_2021(original, out_path):
    import tempfile
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    original = os.path.abspath(original)
    sys.path[:] = [original] + [p for p in sys.path[1:] if p and os.path.abspath(p) != root]
    import torch
    torch.set_num_threads(1)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    numpy.float = float  # removed from numpy in 1.24; the 2021 loadWAV casts with it
    # The 2021 trial score passes 3-D inputs to F.pairwise_distance, whose norm was then over
    # dimension 1 (the embedding), today over the last: restore the 2021 meaning.
    compare = load_by_path("_compare_original", os.path.join(root, "tools", "compare_original.py"))
    torch.nn.functional.pairwise_distance = compare.pairwise_distance_2020
    sys.modules["torchaudio"] = torchaudio_standin(root)
    from DatasetLoader import loadWAV
    from SpeakerNet import ModelTrainer, SpeakerNet, WrappedModel
    from tuneThreshold import tuneThresholdfromScore

    work = tempfile.mkdtemp(prefix="reference2021_")
    trials = make_wavs(work)
    results = {"revision": "71c4c36", "wav_lengths": list(WAV_LENGTHS), "settings": {}}
    for label, setting in SETTINGS.items():
        options = {k: v for k, v in setting.items() if k != "evals"}
        torch.manual_seed(0)
        net = SpeakerNet(optimizer="adam", nPerSpeaker=2, **options)
        state = net.state_dict()
        filled = seeded_weights(state)
        net.load_state_dict(dict(state, **filled))
        trainer = ModelTrainer(WrappedModel(net), optimizer="adam", scheduler="steplr", gpu=0, mixedprec=False,
                               lr=0.001, weight_decay=0, test_interval=10, max_epoch=500, lr_decay=0.95)
        checkpoint = os.path.join(work, label + ".model")
        trainer.saveParameters(checkpoint)
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        keys = key_list(saved)
        # Reload through the 2021 loader (its map_location names a GPU: mapped to the CPU here).
        load = torch.load
        torch.load = lambda f, *args, **kwargs: load(f, map_location="cpu", weights_only=True)
        try:
            trainer.loadParameters(checkpoint)
        finally:
            torch.load = load
        record = {
            "options": options,
            "keys_sha256": key_digest(keys),
            "buffers": {name: buffer_checksum(value) for name, value in saved.items() if "torchfb" in name},
            "parameters": sum(value.numel() for name, value in net.__S__.named_parameters()),
            "evals": [],
        }
        if label == "v2_asp64":
            record["keys"] = keys
        net.eval()
        with torch.no_grad():
            crops = torch.FloatTensor(loadWAV(os.path.join(work, wav_names()[0]), 100, evalmode=True, num_eval=4))
            record["embedding_file0_eval100"] = net.__S__(crops)[:2, :16].tolist()
        for eval_frames, num_eval in setting["evals"]:
            scores, labels, names = trainer.evaluateFromList(test_list=trials, test_path=work, nDataLoaderThread=0,
                                                            distributed=False, print_interval=100,
                                                            num_eval=num_eval, eval_frames=eval_frames)
            eer = tuneThresholdfromScore(scores, labels, [1, 0.1])[1]
            record["evals"].append({"eval_frames": eval_frames, "num_eval": num_eval, "trials": names,
                                    "labels": labels, "scores": [float(s) for s in scores], "eer": float(eer)})
        results["settings"][label] = record
        print("\n%s: EER %s" % (label, [e["eer"] for e in record["evals"]]), file=sys.stderr, flush=True)
    with open(out_path, "w") as handle:
        json.dump(results, handle, indent=None, separators=(",", ":"))
        handle.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tools/reference_2021.py ORIGINAL_2021_FOLDER OUT.json")
    run_2021(sys.argv[1], sys.argv[2])
