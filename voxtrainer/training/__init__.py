"""Training: the loop every caller uses (one step, one epoch, the run that trains, evaluates and
saves), the schedules set before each step, and the processes of a distributed run. It takes a
SpeakerNet, a loader from voxtrainer.reading and an evaluation from voxtrainer.scoring, and writes
through voxtrainer.checkpoints into the experiment folder."""
