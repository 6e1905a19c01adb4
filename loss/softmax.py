import torch.nn as nn

from loss.base import SpeakerLoss


class LossFunction(SpeakerLoss):
    """Plain softmax classification over the training speakers."""

    train_normalize = False
    test_normalize = True
    utterances_per_speaker = 1  # one utterance per class label
    classifies_speakers = True

    def __init__(self, nOut=512, nClasses=5994, **kwargs):
        super().__init__()
        self.fc = nn.Linear(nOut, nClasses)

    def forward_fp32(self, x, label):
        return self.cross_entropy_top1(self.fc(x), label)
