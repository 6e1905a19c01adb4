"""Process-environment defaults that only work when set before torch is imported; the command-line
entry points (trainSpeakerNet.py, benchmark.py) import this module first.

OMP_WAIT_POLICY=PASSIVE (unless already set): with libgomp's default, an intra-op thread that
reaches a barrier spins for a while, so on a CPU shared with other processes every parallel region
can cost a scheduler time slice. Measured on a busy 2-core machine (2 torch threads): a ResNetSE34L
train step of 64 x 200 frames ran at 2.4-7.2 utt/s by default and 11.6-15.4 utt/s with PASSIVE; a
one-epoch tiny demo run took 53 s instead of 11 s. Numerics are unchanged. On a dedicated machine,
OMP_WAIT_POLICY=ACTIVE may be a few per cent faster: set it in the environment to override.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
