"""Fast ResNet-34 ("ResNetSE34L"): a quarter-width SE-ResNet-34 on 40 log-mel bands."""

import torch.nn as nn

from models.frontend import LogMelInstanceNorm
from models.ResNetBlocks import ResNetSE


class ResNetSE34L(ResNetSE):
    def __init__(self, nOut=512, encoder_type="SAP", n_mels=40, **kwargs):
        super().__init__()
        num_filters = [16, 32, 64, 128]
        self.conv1 = nn.Conv2d(1, num_filters[0], kernel_size=7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU(inplace=True)
        self.make_stages([3, 4, 6, 3], num_filters, strides=[1, (2, 2), (2, 2), 1])
        self.torchfb = LogMelInstanceNorm(n_mels)
        # Collapses the 5 remaining frequency rows (40 mels / 8) into one.
        self.avgpool = nn.AvgPool2d((5, 1), stride=1)
        self.init_encoder(encoder_type, num_filters[3], nOut)
        self.init_weights()

    def forward(self, waveform):
        x = self.torchfb(waveform)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.avgpool(self.run_stages(x))
        return self.embed(x.squeeze(2))


def MainModel(nOut=512, encoder_type="SAP", **kwargs):
    return ResNetSE34L(nOut=nOut, encoder_type=encoder_type, **kwargs)
