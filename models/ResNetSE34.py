"""Thin ResNet-34 ("ResNetSE34"): an SE-ResNet-34 on the instance-normalised linear spectrogram."""

import torch.nn as nn

from models.frontend import LinearSpectrogramInstanceNorm
from models.ResNetBlocks import ResNetSE


class ResNetSE34(ResNetSE):
    def __init__(self, nOut=512, encoder_type="SAP", **kwargs):
        super().__init__()
        num_filters = [16, 32, 64, 128]
        self.conv1 = nn.Conv2d(1, num_filters[0], kernel_size=7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=(2, 1), padding=1)
        self.make_stages([3, 4, 6, 3], num_filters, strides=[1, (2, 2), (2, 2), (2, 2)])
        # Collapses the 9 remaining frequency rows (257 bins / 32) into one.
        self.avgpool = nn.AvgPool2d((9, 1), stride=1)
        self.spectrogram = LinearSpectrogramInstanceNorm()
        self.init_encoder(encoder_type, num_filters[3], nOut)
        self.init_weights()

    def forward(self, waveform):
        x = self.spectrogram(waveform)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.run_stages(x))
        return self.embed(x.squeeze(2))


def MainModel(nOut=512, encoder_type="SAP", **kwargs):
    return ResNetSE34(nOut=nOut, encoder_type=encoder_type, **kwargs)
