"""WeSpeaker's ResNet family (wespeaker/models/resnet.py): 80 Kaldi fbank bins as a one-channel
image, a 3x3 stem without max-pool, four stages of 32/64/128/256 channels (x4 with bottlenecks),
stages 2-4 halving both axes, statistics pooling (TSTP) and one linear layer (`seg_1`).

Submodule names are WeSpeaker's, so a WeSpeaker checkpoint is this model's state_dict as it is
(voxtrainer.checkpoints adds the `__S__.` prefix). The fbank front end, WeSpeaker's data pipeline
there, is inside the model here because SpeakerNet feeds int16-range waveforms."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.kaldi import KaldiFbank

FEAT_DIM = 80
STD_EPS = 1e-7  # WeSpeaker's: sqrt(var + 1e-7)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        return F.relu(out + self.shortcut(x))


def shortcut(in_planes, out_planes, stride):
    """Identity, or a strided 1x1 conv and BN where the shape changes (an empty Sequential keeps
    WeSpeaker's `shortcut.0` / `shortcut.1` key names)."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


def statistics_pooling(x):
    """TSTP: mean and sqrt(unbiased variance + 1e-7) over time of (batch, channels, freq, time)."""
    mean = x.mean(dim=-1).flatten(start_dim=1)
    std = torch.sqrt(torch.var(x, dim=-1) + STD_EPS).flatten(start_dim=1)
    return torch.cat((mean, std), dim=1)


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, nOut=256, m_channels=32):
        super().__init__()
        self.fbank = KaldiFbank(FEAT_DIM, subtract_mean=True)
        self.in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = self.make_layer(block, m_channels, num_blocks[0], 1)
        self.layer2 = self.make_layer(block, m_channels * 2, num_blocks[1], 2)
        self.layer3 = self.make_layer(block, m_channels * 4, num_blocks[2], 2)
        self.layer4 = self.make_layer(block, m_channels * 8, num_blocks[3], 2)
        # Three stride-2 stages leave 80 / 8 = 10 frequency rows (WeSpeaker: int(feat_dim / 8)).
        stats_dim = (FEAT_DIM // 8) * m_channels * 8 * block.expansion
        self.seg_1 = nn.Linear(stats_dim * 2, nOut)

    def make_layer(self, block, planes, count, stride):
        layers = []
        for layer_stride in [stride] + [1] * (count - 1):
            layers.append(block(self.in_planes, planes, layer_stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, waveform):
        """(batch, samples) int16-range waveforms -> (batch, nOut), WeSpeaker's embedding (the
        last element of its model's output pair), not normalised."""
        x = self.fbank(waveform).unsqueeze(1)  # (batch, 1, 80 bins, frames), as WeSpeaker permutes
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.seg_1(statistics_pooling(x))


def resnet_model(block, num_blocks, name):
    """The MainModel of WeSpeaker's ResNet `name` (`num_blocks` blocks per stage): statistics
    pooling, a 256-d embedding by default, as WeSpeaker's published VoxCeleb models."""
    def MainModel(nOut=256, encoder_type="SAP", **kwargs):
        check_encoder(encoder_type, name)
        return ResNet(block, num_blocks, nOut)
    MainModel.default_nOut = 256  # WeSpeaker's embed_dim for its VoxCeleb models
    return MainModel


def check_encoder(encoder_type, model):
    """The pooling is WeSpeaker's; the project's default --encoder_type SAP stands for it."""
    if encoder_type not in ("SAP", "TSTP"):
        raise ValueError("--encoder_type %s: %s pools with WeSpeaker's statistics pooling (TSTP)" % (
            encoder_type, model))
