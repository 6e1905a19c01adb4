"""The 2020 trainer's data module, under its name: `loadWAV(filename, max_frames, evalmode,
num_eval)` and the list and sampler classes. The code lives in voxtrainer/audio.py, lists.py and
datasets.py."""

from voxtrainer.audio import crop_waveform, loadWAV  # noqa: F401
from voxtrainer.datasets import SpeakerBatchSampler, make_train_loader  # noqa: F401
from voxtrainer.lists import TestList, TrainList  # noqa: F401
