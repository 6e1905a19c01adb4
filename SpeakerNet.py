"""The 2020 trainer's model module, under its name: `SpeakerNet(model, trainfunc, ...)` with
`saveParameters`, `loadParameters`, `evaluateFromList` and `embed`. The code lives in
voxtrainer/network.py."""

from voxtrainer.network import SpeakerNet  # noqa: F401
