"""The command line of trainSpeakerNet.py: the flags (declared once, flags.py), building the
network they describe (build.py), and one module per mode: training (train.py), --eval
(evaluate.py), --verify (verify.py), --extract / --export / --average_last (outputs.py). Each mode
takes the parsed flags and the network; tests may call a mode directly."""
