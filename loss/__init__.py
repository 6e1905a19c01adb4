"""Loss functions: each plugin `loss/<name>.py` exposes one `LossFunction`, a `loss.base.SpeakerLoss`."""
