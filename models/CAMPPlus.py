"""WeSpeaker's CAM++ (wespeaker/models/campplus.py, after Wang et al. 2023, "CAM++: A Fast and
Efficient Network for Speaker Verification Using Context-Aware Masking"), taking WeSpeaker
checkpoints as they are.

80 Kaldi fbank bins less their mean over time (inside the model, as for ResNet34) go through a
small 2D residual head that halves only the frequency axis (80 -> 10 rows of 32 channels), a
stride-2 TDNN, three densely connected blocks of context-aware-masked TDNN layers (12, 24 and 16
layers, growth 32) each followed by a halving transition, statistics pooling (TSTP) and a linear
layer with a scale-free BatchNorm. Submodule names are WeSpeaker's (`head.*`, `xvector.*`), so a
WeSpeaker state_dict is this model's."""

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.kaldi import KaldiFbank
from models.wespeaker_resnet import BasicBlock, check_encoder, statistics_pooling

FEAT_DIM = 80
HEAD_CHANNELS = 32
INIT_CHANNELS = 128
GROWTH_RATE = 32
BOTTLENECK_CHANNELS = 4 * GROWTH_RATE  # WeSpeaker's bn_size x growth_rate
DENSE_BLOCKS = ((12, 1), (24, 2), (16, 2))  # (layers, dilation of their kernel-3 convs)
CONTEXT_REDUCTION = 2
SEGMENT_FRAMES = 100  # the masks' segment-level context: means over 100-frame segments


class BatchNormReLU(nn.Module):
    """WeSpeaker's 'batchnorm-relu' nonlinearity; the attribute name keeps its `batchnorm.*` keys."""

    def __init__(self, channels):
        super().__init__()
        self.batchnorm = nn.BatchNorm1d(channels)

    def forward(self, x):
        return F.relu(self.batchnorm(x))


class FrequencyHead(nn.Module):
    """WeSpeaker's FCM: (batch, 80, frames) fbank as a one-channel image -> (batch, 32 x 10,
    frames). Every stride is (2, 1): the frequency axis halves three times, time keeps its length."""

    def __init__(self, channels=HEAD_CHANNELS):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(BasicBlock(channels, channels, (2, 1)), BasicBlock(channels, channels))
        self.layer2 = nn.Sequential(BasicBlock(channels, channels, (2, 1)), BasicBlock(channels, channels))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (FEAT_DIM // 8)

    def forward(self, features):
        x = F.relu(self.bn1(self.conv1(features.unsqueeze(1))))
        x = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(x)))))
        return x.flatten(1, 2)  # (batch, channels x rows, frames), channel-major as WeSpeaker's reshape


class TDNNLayer(nn.Module):
    """A bias-free conv over time, then BatchNorm and ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                                padding=(kernel_size - 1) // 2 * dilation, dilation=dilation, bias=False)
        self.nonlinear = BatchNormReLU(out_channels)

    def forward(self, x):
        return self.nonlinear(self.linear(x))


def segment_means(x, segment_frames=SEGMENT_FRAMES):
    """Each frame's mean over its segment of `segment_frames` frames (the last segment may be
    shorter and is averaged over its own frames), as WeSpeaker's seg_pooling ('avg')."""
    means = F.avg_pool1d(x, kernel_size=segment_frames, stride=segment_frames, ceil_mode=True)
    expanded = means.unsqueeze(-1).expand(-1, -1, -1, segment_frames).flatten(2)
    return expanded[..., :x.shape[-1]]


class CAMLayer(nn.Module):
    """Context-aware masking: a dilated conv's output gated per channel and frame by a sigmoid of
    the utterance mean plus the frame's segment mean, through a two-layer bottleneck."""

    def __init__(self, in_channels, out_channels, dilation, reduction=CONTEXT_REDUCTION):
        super().__init__()
        self.linear_local = nn.Conv1d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(in_channels, in_channels // reduction, 1)
        self.linear2 = nn.Conv1d(in_channels // reduction, out_channels, 1)

    def forward(self, x):
        context = x.mean(-1, keepdim=True) + segment_means(x)
        mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return self.linear_local(x) * mask


class CAMDenseTDNNLayer(nn.Module):
    """BN-ReLU, a 1x1 bottleneck conv, BN-ReLU, and the CAM layer: GROWTH_RATE new channels."""

    def __init__(self, in_channels, dilation):
        super().__init__()
        self.nonlinear1 = BatchNormReLU(in_channels)
        self.linear1 = nn.Conv1d(in_channels, BOTTLENECK_CHANNELS, 1, bias=False)
        self.nonlinear2 = BatchNormReLU(BOTTLENECK_CHANNELS)
        self.cam_layer = CAMLayer(BOTTLENECK_CHANNELS, GROWTH_RATE, dilation)

    def forward(self, x):
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.ModuleDict):
    """Dense connectivity: each layer's output is appended to its input's channels
    (`tdnnd1`, `tdnnd2`, ... as WeSpeaker names them)."""

    def __init__(self, num_layers, in_channels, dilation):
        super().__init__(OrderedDict(("tdnnd%d" % (index + 1), CAMDenseTDNNLayer(
            in_channels + index * GROWTH_RATE, dilation)) for index in range(num_layers)))

    def forward(self, x):
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    """BN-ReLU, then a bias-free 1x1 conv (halving the channels)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.nonlinear = BatchNormReLU(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class StatisticsPooling(nn.Module):
    def forward(self, x):
        return statistics_pooling(x)


class ScaleFreeBatchNorm(nn.Module):
    """WeSpeaker's 'batchnorm_' nonlinearity: BatchNorm without scale and shift."""

    def __init__(self, channels):
        super().__init__()
        self.batchnorm = nn.BatchNorm1d(channels, affine=False)

    def forward(self, x):
        return self.batchnorm(x)


class DenseLayer(nn.Module):
    """The embedding layer: a bias-free 1x1 conv (a linear map of the pooled statistics), then a
    scale-free BatchNorm."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = ScaleFreeBatchNorm(out_channels)

    def forward(self, x):
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


def xvector_layers(in_channels, nOut):
    """WeSpeaker's `xvector` sequence, in its order and under its names."""
    layers = OrderedDict(tdnn=TDNNLayer(in_channels, INIT_CHANNELS, 5, stride=2))
    channels = INIT_CHANNELS
    for index, (num_layers, dilation) in enumerate(DENSE_BLOCKS, start=1):
        layers["block%d" % index] = CAMDenseTDNNBlock(num_layers, channels, dilation)
        channels += num_layers * GROWTH_RATE
        layers["transit%d" % index] = TransitLayer(channels, channels // 2)
        channels //= 2
    layers["out_nonlinear"] = BatchNormReLU(channels)
    layers["stats"] = StatisticsPooling()
    layers["dense"] = DenseLayer(channels * 2, nOut)
    return nn.Sequential(layers)


class CAMPPlus(nn.Module):
    def __init__(self, nOut=512):
        super().__init__()
        self.fbank = KaldiFbank(FEAT_DIM, subtract_mean=True)
        self.head = FrequencyHead()
        self.xvector = xvector_layers(self.head.out_channels, nOut)
        for module in self.modules():  # WeSpeaker's initialisation; its 2D convs keep torch's default
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, waveform):
        """(batch, samples) int16-range waveforms -> (batch, nOut), WeSpeaker's embedding, not
        normalised."""
        return self.xvector(self.head(self.fbank(waveform)))


def MainModel(nOut=512, encoder_type="SAP", variant=None, **kwargs):
    check_encoder(encoder_type, "CAMPPlus")
    if variant is not None:
        raise ValueError("--variant %s: CAMPPlus has one size (WeSpeaker's), it takes no --variant" % variant)
    return CAMPPlus(nOut)


MainModel.default_nOut = 512  # WeSpeaker's embed_dim for its VoxCeleb CAM++
