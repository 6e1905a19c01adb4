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


class SEResNetStages:
    """The four residual stages and the weight init that every SE-ResNet here shares (mixed into
    an nn.Module that sets `inplanes` to the stem's channels first)."""

    def make_stages(self, block, layers, num_filters, strides):
        for index, (blocks, planes, stride) in enumerate(zip(layers, num_filters, strides), start=1):
            setattr(self, "layer%d" % index, self._make_layer(block, planes, blocks, stride))

    def stages(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def init_weights(self):
        """Kaiming-normal 2-D convolutions and unit 2-D BatchNorms, as the originals (the 1-D
        layers of an attention head keep PyTorch's defaults, as there)."""
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


class ResNetSE(PooledEmbeddingModel, SEResNetStages):
    """The SE-ResNet-34 of ResNetSE34 and ResNetSE34L, which differ only in front end, stem
    max-pool, stage strides and so in how many frequency rows the final average pool collapses.

    Submodules are created in the original's order (stem, stages, encoder, then the weight
    init), so a model built under a given torch seed starts from the original's weights; the
    front end is registered after the stages, where its buffers sit in the original state_dict.
    """

    def __init__(self, frontend, nOut, encoder_type, *, stem_maxpool, strides, avgpool_rows,
                 layers=(3, 4, 6, 3), num_filters=(16, 32, 64, 128), block=SEBasicBlock):
        super().__init__()
        self.conv1 = nn.Conv2d(1, num_filters[0], kernel_size=7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=(2, 1), padding=1) if stem_maxpool else nn.Identity()
        self.inplanes = num_filters[0]
        self.make_stages(block, layers, num_filters, strides)
        self.torchfb = frontend
        self.avgpool = nn.AvgPool2d((avgpool_rows, 1), stride=1)
        self.init_encoder(encoder_type, num_filters[-1] * block.expansion, nOut)
        self.init_weights()

    def forward(self, waveform):
        x = self.torchfb(waveform)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.stages(x)
        return self.embed(self.avgpool(x).squeeze(2))
