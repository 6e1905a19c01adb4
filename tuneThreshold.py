"""The 2020 trainer's metrics module, under its name: EER and thresholds, minDCF.
The code lives in voxtrainer/scoring/metrics.py."""

from voxtrainer.scoring.metrics import ComputeErrorRates, ComputeMinDcf, minDCF, tuneThresholdfromScore  # noqa: F401
