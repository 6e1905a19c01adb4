"""Squeeze-and-excitation residual blocks and the residual trunk of the ResNetSE models."""

import torch.nn as nn

from models.pooling import PooledEmbeddingModel


class SELayer(nn.Module):
    def __init__(self, channels, reduction=8):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x):
        gates = self.fc(x.mean(dim=(2, 3)))
        return x * gates[:, :, None, None]


class SEBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, reduction=8):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = SELayer(planes, reduction)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        # The original applies ReLU before the first BatchNorm: kept for checkpoint compatibility.
        out = self.bn1(self.relu(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + residual)


class ResNetSE(PooledEmbeddingModel):
    """Four stages of SE blocks (`layer1`..`layer4`) after a stem the subclass builds."""

    def make_stages(self, layers, num_filters, strides, block=SEBasicBlock):
        self.inplanes = num_filters[0]
        for index, (blocks, planes, stride) in enumerate(zip(layers, num_filters, strides), start=1):
            setattr(self, "layer%d" % index, self._make_layer(block, planes, blocks, stride))

    def init_weights(self):
        """Kaiming-normal convolutions and unit BatchNorms, as the original."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        stage = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        stage += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def run_stages(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
