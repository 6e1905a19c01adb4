"""WeSpeaker's ERes2Net (wespeaker/models/eres2net.py, from 3D-Speaker): a ResNet34 layout of
Res2Net-style blocks whose splits are fused by attention (AFF) in stages 3 and 4 (local fusion),
and whose stage outputs are fused bottom-up across scales before pooling (global fusion).

`--variant` picks one of WeSpeaker's builders: ERes2Net34_Base (the default, as its VoxCeleb
recipe eres2net.yaml), ERes2Net34_Large or ERes2Net34_aug ("Base", "Large", "aug" for short).
Submodule names are WeSpeaker's, so a WeSpeaker checkpoint is this model's state_dict as it is;
the Kaldi fbank front end (models/kaldi.py, 80 bins less their mean over time) has no checkpoint
tensors. WeSpeaker's two_emb_layer option (off in its recipes) is not reproduced."""

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.kaldi import KaldiFbank
from models.wespeaker_resnet import FEAT_DIM, check_encoder, shortcut, statistics_pooling

BLOCKS_PER_STAGE = (3, 4, 6, 3)
FUSION_REDUCTION = 4
# Inside the blocks WeSpeaker's "ReLU" is a Hardtanh clipped at 20; the stem uses a plain ReLU.
CLIP = 20.0


class Size(NamedTuple):
    m_channels: int
    base_width: int
    scale: int
    expansion: int


VARIANTS = {
    "ERes2Net34_Base": Size(m_channels=32, base_width=32, scale=2, expansion=2),
    "ERes2Net34_Large": Size(m_channels=64, base_width=32, scale=2, expansion=2),
    "ERes2Net34_aug": Size(m_channels=64, base_width=24, scale=3, expansion=4),
}
DEFAULT_VARIANT = "ERes2Net34_Base"


def clipped_relu(x):
    return F.hardtanh(x, 0.0, CLIP)


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class AFF(nn.Module):
    """Attentional feature fusion of two maps of one shape: a gate in (0, 2) from both, x * gate +
    y * (2 - gate)."""

    def __init__(self, channels):
        super().__init__()
        inner = channels // FUSION_REDUCTION
        self.local_att = nn.Sequential(nn.Conv2d(channels * 2, inner, 1), nn.BatchNorm2d(inner), nn.SiLU(),
                                       nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x, y):
        gate = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))
        return x * gate + y * (2.0 - gate)


class ERes2NetBlockBase(nn.Module):
    """What both block kinds share: a 1x1 conv into `scale` splits of `width` channels, a 1x1 conv
    back to planes x expansion, and the residual shortcut. Subclasses fill in the split convs."""

    def __init__(self, in_planes, planes, stride, size):
        super().__init__()
        self.width = int(math.floor(planes * (size.base_width / 64.0)))
        self.conv1 = nn.Conv2d(in_planes, self.width * size.scale, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(self.width * size.scale)

    def finish(self, in_planes, planes, stride, size):
        """The layers after the splits, created after theirs so that the state_dict order is WeSpeaker's."""
        self.conv3 = nn.Conv2d(self.width * size.scale, planes * size.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * size.expansion)
        self.shortcut = shortcut(in_planes, planes * size.expansion, stride)

    def forward(self, x):
        splits = torch.split(clipped_relu(self.bn1(self.conv1(x))), self.width, dim=1)
        out = self.bn3(self.conv3(torch.cat(self.process_splits(splits), dim=1)))
        return clipped_relu(out + self.shortcut(x))


class BasicBlockERes2Net(ERes2NetBlockBase):
    """Res2Net splits: split i > 0 is added to the previous split's output before its own 3x3 conv."""

    def __init__(self, in_planes, planes, stride, size):
        super().__init__(in_planes, planes, stride, size)
        self.convs = nn.ModuleList(conv3x3(self.width, self.width) for _ in range(size.scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(self.width) for _ in range(size.scale))
        self.finish(in_planes, planes, stride, size)

    def process_splits(self, splits):
        outputs = []
        part = splits[0]
        for index, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if index > 0:
                part = part + splits[index]
            part = clipped_relu(bn(conv(part)))
            outputs.append(part)
        return outputs


class BasicBlockERes2Net_diff_AFF(ERes2NetBlockBase):
    """Local feature fusion: split i > 0 is fused with the previous split's output by AFF, not added."""

    def __init__(self, in_planes, planes, stride, size):
        super().__init__(in_planes, planes, stride, size)
        self.conv2_1 = conv3x3(self.width, self.width)
        self.bn2_1 = nn.BatchNorm2d(self.width)
        self.convs = nn.ModuleList(conv3x3(self.width, self.width) for _ in range(size.scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(self.width) for _ in range(size.scale - 1))
        self.fuse_models = nn.ModuleList(AFF(self.width) for _ in range(size.scale - 1))
        self.finish(in_planes, planes, stride, size)

    def process_splits(self, splits):
        part = clipped_relu(self.bn2_1(self.conv2_1(splits[0])))
        outputs = [part]
        for index, (conv, bn, fuse) in enumerate(zip(self.convs, self.bns, self.fuse_models), 1):
            part = clipped_relu(bn(conv(fuse(part, splits[index]))))
            outputs.append(part)
        return outputs


class ERes2Net(nn.Module):
    def __init__(self, size, nOut=512):
        super().__init__()
        self.fbank = KaldiFbank(FEAT_DIM, subtract_mean=True)
        channels = size.m_channels
        self.in_planes = channels
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        blocks = BLOCKS_PER_STAGE
        self.layer1 = self.make_layer(BasicBlockERes2Net, channels, blocks[0], 1, size)
        self.layer2 = self.make_layer(BasicBlockERes2Net, channels * 2, blocks[1], 2, size)
        self.layer3 = self.make_layer(BasicBlockERes2Net_diff_AFF, channels * 4, blocks[2], 2, size)
        self.layer4 = self.make_layer(BasicBlockERes2Net_diff_AFF, channels * 8, blocks[3], 2, size)
        stage_out = [channels * size.expansion * 2 ** stage for stage in range(4)]
        self.layer1_downsample = conv3x3(stage_out[0], stage_out[1], stride=2)
        self.layer2_downsample = conv3x3(stage_out[1], stage_out[2], stride=2)
        self.layer3_downsample = conv3x3(stage_out[2], stage_out[3], stride=2)
        self.fuse_mode12 = AFF(stage_out[1])
        self.fuse_mode123 = AFF(stage_out[2])
        self.fuse_mode1234 = AFF(stage_out[3])
        # Three stride-2 stages leave 80 / 8 = 10 frequency rows; mean and std of each channel-row.
        self.seg_1 = nn.Linear((FEAT_DIM // 8) * stage_out[3] * 2, nOut)

    def make_layer(self, block, planes, count, stride, size):
        blocks = []
        for block_stride in [stride] + [1] * (count - 1):
            blocks.append(block(self.in_planes, planes, block_stride, size))
            self.in_planes = planes * size.expansion
        return nn.Sequential(*blocks)

    def forward(self, waveform):
        """(batch, samples) int16-range waveforms -> (batch, nOut), WeSpeaker's embedding, not
        normalised. Each stage's output, fused with the downsampled fusion of the stages below it,
        feeds the next fusion; the last fusion is pooled."""
        x = self.fbank(waveform).unsqueeze(1)  # (batch, 1, 80 bins, frames), as WeSpeaker permutes
        out1 = self.layer1(F.relu(self.bn1(self.conv1(x))))
        out2 = self.layer2(out1)
        fused = self.fuse_mode12(out2, self.layer1_downsample(out1))
        out3 = self.layer3(out2)
        fused = self.fuse_mode123(out3, self.layer2_downsample(fused))
        out4 = self.layer4(out3)
        fused = self.fuse_mode1234(out4, self.layer3_downsample(fused))
        return self.seg_1(statistics_pooling(fused))


def variant_size(variant):
    """WeSpeaker's builder name, or its suffix after ERes2Net34_ (Base, Large, aug); None: the default."""
    name = DEFAULT_VARIANT if variant is None else variant
    if name not in VARIANTS:
        name = "ERes2Net34_" + name
    if name not in VARIANTS:
        raise ValueError("--variant %s: ERes2Net comes as %s (or %s)" % (
            variant, ", ".join(VARIANTS), ", ".join(key.split("_", 1)[1] for key in VARIANTS)))
    return VARIANTS[name]


def MainModel(nOut=512, encoder_type="SAP", variant=None, **kwargs):
    check_encoder(encoder_type, "ERes2Net")
    return ERes2Net(variant_size(variant), nOut)


MainModel.default_nOut = 512  # embed_dim of WeSpeaker's examples/voxceleb/v2/conf/eres2net.yaml
