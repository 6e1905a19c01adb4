"""The 2020 trainer's data module, under its name: `loadWAV(filename, max_frames, evalmode,
num_eval)` and the list and sampler classes. The code lives in voxtrainer/reading/audio.py, lists.py and
datasets.py."""

from voxtrainer.reading.audio import crop_waveform, loadWAV  # noqa: F401
from voxtrainer.reading.datasets import SpeakerBatchSampler, make_train_loader  # noqa: F401
from voxtrainer.reading.lists import TestList, TrainList  # noqa: F401
