"""The library behind trainSpeakerNet.py and dataprep.py: one module per idea (see README, Code map).

Importing the package imports nothing heavy; each module imports torch, scipy or matplotlib
only where it needs them."""

SAMPLE_RATE = 16000  # of every audio file the trainer reads, as VoxCeleb's: lists with other rates are refused
