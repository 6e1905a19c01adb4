"""WeSpeaker's ECAPA-TDNN with global-context attentive statistics pooling
(ECAPA_TDNN_GLOB_c512 with --channels 512, ECAPA_TDNN_GLOB_c1024 with --channels 1024; its
published VoxCeleb models), taking WeSpeaker checkpoints as they are.

Every unit is conv -> ReLU -> BatchNorm (WeSpeaker's order, not BN before ReLU). Submodule names
are WeSpeaker's (wespeaker/models/ecapa_tdnn.py, pooling_layers.py ASTP), so a WeSpeaker state_dict
is this model's; the Kaldi fbank front end (models/kaldi.py) has no checkpoint tensors."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.kaldi import KaldiFbank

# Speed on CUDA (voxtrainer/precision.py), measured on one H200 (issue 22): contiguous steps are
# faster than channels_last ones for this network (5,956 against 6,716 utt/s), and cuDNN benchmark
# with TF32 took it to 110 GB of GPU memory: both stay off.
CUDA_MEMORY_FORMAT = "contiguous"
CUDNN_BENCHMARK = False

FEAT_DIM = 80
STD_EPS = 1e-7
# The conv after the concatenated blocks has 3 x 512 outputs whatever --channels is (WeSpeaker's
# out_channels = 512 * 3), so the pooling and the embedding layer are the same for c512 and c1024.
POOL_CHANNELS = 512 * 3
ATTENTION_BOTTLENECK = 128
SE_BOTTLENECK = 128
RES2_SCALE = 8


class Conv1dReluBn(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=1, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x):
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """The channels in `scale` splits: split i > 0 is added to the previous split's output before
    its own dilated conv unit; the last split passes through unchanged."""

    def __init__(self, channels, kernel_size, padding, dilation, scale=RES2_SCALE):
        super().__init__()
        self.width = channels // scale
        self.convs = nn.ModuleList(nn.Conv1d(self.width, self.width, kernel_size, padding=padding,
                                             dilation=dilation) for _ in range(scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(scale - 1))

    def forward(self, x):
        splits = torch.split(x, self.width, dim=1)
        out = []
        part = splits[0]
        for index, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if index > 0:
                part = part + splits[index]
            part = bn(F.relu(conv(part)))
            out.append(part)
        out.append(splits[len(self.convs)])
        return torch.cat(out, dim=1)


class SE_Connect(nn.Module):
    def __init__(self, channels, bottleneck=SE_BOTTLENECK):
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x):
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * gate.unsqueeze(2)


class SE_Res2Block(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        # padding = dilation keeps the length of a k=3 conv.
        self.se_res2block = nn.Sequential(Conv1dReluBn(channels, channels),
                                          Res2Conv1dReluBn(channels, 3, padding=dilation, dilation=dilation),
                                          Conv1dReluBn(channels, channels), SE_Connect(channels))

    def forward(self, x):
        return x + self.se_res2block(x)


class ASTP(nn.Module):
    """Attentive statistics pooling with global context: the attention sees each frame together
    with the utterance's mean and std (unbiased, +1e-7); the weighted std is
    sqrt(max(sum(a x^2) - mean^2, 1e-7)). Kernel-1 convs, as WeSpeaker (its parameter shapes)."""

    def __init__(self, in_dim, bottleneck=ATTENTION_BOTTLENECK):
        super().__init__()
        self.linear1 = nn.Conv1d(in_dim * 3, bottleneck, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck, in_dim, kernel_size=1)

    def forward(self, x):
        context_mean = x.mean(dim=-1, keepdim=True).expand_as(x)
        context_std = torch.sqrt(torch.var(x, dim=-1, keepdim=True) + STD_EPS).expand_as(x)
        attention = torch.tanh(self.linear1(torch.cat((x, context_mean, context_std), dim=1)))
        attention = torch.softmax(self.linear2(attention), dim=2)
        mean = torch.sum(attention * x, dim=2)
        var = torch.sum(attention * x * x, dim=2) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=STD_EPS))], dim=1)


class ECAPA_TDNN(nn.Module):
    def __init__(self, channels=512, nOut=192):
        super().__init__()
        self.fbank = KaldiFbank(FEAT_DIM, subtract_mean=True)
        self.layer1 = Conv1dReluBn(FEAT_DIM, channels, kernel_size=5, padding=2)
        self.layer2 = SE_Res2Block(channels, dilation=2)
        self.layer3 = SE_Res2Block(channels, dilation=3)
        self.layer4 = SE_Res2Block(channels, dilation=4)
        self.conv = nn.Conv1d(channels * 3, POOL_CHANNELS, kernel_size=1)
        self.pool = ASTP(POOL_CHANNELS)
        self.bn = nn.BatchNorm1d(POOL_CHANNELS * 2)
        self.linear = nn.Linear(POOL_CHANNELS * 2, nOut)

    def forward(self, waveform):
        """(batch, samples) int16-range waveforms -> (batch, nOut), WeSpeaker's embedding (the
        last element of its model's output pair), not normalised."""
        out1 = self.layer1(self.fbank(waveform))  # fbank: (batch, 80, frames), WeSpeaker's permuted input
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        out = F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))
        return self.linear(self.bn(self.pool(out)))


def MainModel(nOut=192, encoder_type="SAP", channels=512, **kwargs):
    if encoder_type not in ("SAP", "ASTP"):
        raise ValueError("--encoder_type %s: ECAPA_TDNN pools with WeSpeaker's attentive statistics pooling "
                         "(ASTP)" % encoder_type)
    if channels % RES2_SCALE:
        raise ValueError("--channels %d: ECAPA_TDNN needs a multiple of %d (WeSpeaker's are 512 and 1024)" % (
            channels, RES2_SCALE))
    return ECAPA_TDNN(channels, nOut)


MainModel.default_nOut = 192  # WeSpeaker's embed_dim for its VoxCeleb ECAPA-TDNNs
