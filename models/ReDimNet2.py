"""WeSpeaker's ReDimNet2 (wespeaker/models/redimnet2.py at dfa7419, ReDimNet2B0 ... B6 with the
settings of examples/voxceleb/v2/conf/redimnet2.yaml), its published checkpoints loading as they
are; --variant B0 ... B6 (default B6, the published 12.39 M-parameter model).

The input is WeSpeaker's tfmel front end (models/redimnet2_tfmel.py, 72 mel bands) as a
one-channel image. A stem convolution gives the first feature map; each of six stages mixes all
feature maps so far (a learned softmax per channel), downsamples frequency and (cumulatively)
time with a grouped strided convolution, runs depthwise residual blocks in 2D and a time-context
block in 1D, and upsamples time back, adding one more feature map. A last mix of them all is
pooled (ASTP with global context) into the embedding. Every feature map has channels x freqs =
C x 72 values per frame, which is why a stage can widen channels as it narrows frequency.

Names follow WeSpeaker's model object as its training script builds it: the network, then the
front end attached as `frontend` (its buffers are checkpoint tensors there), so a published
avg_model.pt, less its `projection.*` head, is this model's state_dict."""

import math

import torch.nn as nn

from models.ECAPA_TDNN import ASTP
from models.redimnet2_blocks import (ChannelsFirstLayerNorm, ConvBlock2d, FeatureMapWeights, Stage,
                                     TimeContextBlock1d, To1d, To2d)
from models.redimnet2_tfmel import TFMelFrontend

FEAT_DIM = 72
INT16_SCALE = 32768.0  # WeSpeaker reads audio as floats in [-1, 1]; SpeakerNet gives int16-range samples
BN_EPS = 1e-6  # the BatchNorm after a stage's channel reduction

# variant: (C, out_channels, 2D head, stages); a stage is (freq stride, time stride, 2D blocks,
# channel expansion in the 2D blocks, channels x freqs / time-context width). WeSpeaker's stage
# lists also name 2D kernel sizes, which its "basic_resnet" blocks ignore (always 3x3).
VARIANTS = {
    "B0": (12, 64, False, [(1, 1, 2, 2, 36), (2, 1, 3, 1, 36), (1, 2, 4, 1, 36), (2, 1, 5, 1, 36),
                           (1, 2, 4, 1, 18), (2, 1, 3, 1, 18)]),
    "B1": (16, 64, False, [(1, 1, 2, 2, 32), (2, 1, 3, 1, 32), (1, 2, 4, 1, 32), (2, 1, 5, 1, 32),
                           (1, 2, 4, 1, 16), (2, 1, 3, 1, 16)]),
    "B2": (20, 64, False, [(1, 1, 2, 2, 40), (2, 1, 3, 1, 30), (1, 2, 4, 1, 30), (3, 1, 5, 1, 20),
                           (1, 2, 4, 1, 20), (2, 1, 3, 1, 10)]),
    "B3": (24, 64, False, [(1, 1, 2, 2, 36), (2, 1, 3, 1, 36), (1, 2, 4, 1, 36), (2, 1, 5, 1, 36),
                           (1, 2, 4, 1, 18), (2, 1, 3, 1, 18)]),
    "B4": (32, None, False, [(1, 1, 2, 4, 24), (2, 1, 3, 3, 24), (1, 2, 4, 2, 24), (2, 1, 5, 1, 24),
                             (1, 2, 4, 1, 24), (2, 1, 3, 1, 24)]),
    "B5": (48, 256, False, [(1, 1, 2, 4, 48), (2, 1, 3, 3, 48), (1, 2, 4, 2, 48), (2, 1, 5, 1, 48),
                            (1, 2, 4, 1, 32), (2, 1, 3, 1, 32)]),
    "B6": (64, 224, True, [(1, 1, 3, 3, 64), (2, 1, 4, 2, 64), (1, 2, 5, 2, 48), (2, 1, 5, 1, 48),
                           (1, 2, 4, 0.75, 32), (2, 1, 3, 0.5, 24)]),
}
DEFAULT_VARIANT = "B6"


def build_stage(maps, channels, freqs, width, time_stride, stage):
    """A stage's modules, indexed as WeSpeaker's: mix, to 2D, strided conv, 2D blocks, channel
    reduction (when expanded), to 1D, time-context block, upsampling."""
    freq_stride, _, blocks, expansion, reduction = stage
    wide = int(freq_stride * channels * expansion)
    layers = [FeatureMapWeights(maps, width), To2d(freqs, channels),
              nn.Conv2d(channels, wide, kernel_size=(freq_stride, time_stride), stride=(freq_stride, time_stride),
                        groups=math.gcd(channels, wide))]
    channels, freqs = channels * freq_stride, freqs // freq_stride
    layers += [ConvBlock2d(wide) for _ in range(blocks)]
    if expansion != 1:
        layers.append(nn.Sequential(nn.Conv2d(wide, channels, 1), nn.BatchNorm2d(channels, eps=BN_EPS)))
    layers += [To1d(), TimeContextBlock1d(width, width // reduction),
               nn.Upsample(scale_factor=time_stride, mode="nearest")]
    return Stage(*layers), channels, freqs


class ReDimNet2Backbone(nn.Module):
    def __init__(self, channels, out_channels, head_2d, stages, freqs=FEAT_DIM):
        super().__init__()
        width = channels * freqs
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding="same"), ChannelsFirstLayerNorm(channels), To1d())
        time_stride = 1
        for index, stage in enumerate(stages):
            if freqs % stage[0]:
                raise ValueError("ReDimNet2: %d frequency bands do not divide by the stride %d" % (freqs, stage[0]))
            time_stride *= stage[1]
            module, channels, freqs = build_stage(index + 1, channels, freqs, width, time_stride, stage)
            setattr(self, "stage%d" % index, module)
        self.num_stages, self.time_stride = len(stages), time_stride
        self.fin_wght1d = FeatureMapWeights(len(stages) + 1, width)
        self.fin_to2d = To2d(freqs, channels) if head_2d else nn.Identity()
        if out_channels is None:
            self.head = nn.Identity()
        else:
            self.head = nn.Conv2d(channels, out_channels, 1) if head_2d else nn.Conv1d(width, out_channels, 1)
        self.out_dim = (freqs * out_channels if head_2d else out_channels) if out_channels else width

    def forward(self, features):
        """(batch, 1, freqs, frames) -> (batch, out_dim, frames // time_stride * time_stride)."""
        frames = features.shape[-1] // self.time_stride * self.time_stride
        feature_maps = [self.stem(features[..., :frames])]
        for index in range(self.num_stages):
            feature_maps.append(getattr(self, "stage%d" % index)(feature_maps))
        return self.head(self.fin_to2d(self.fin_wght1d(feature_maps))).flatten(1, -2)


class ReDimNet2(nn.Module):
    def __init__(self, variant, nOut):
        super().__init__()
        channels, out_channels, head_2d, stages = VARIANTS[variant]
        self.backbone = ReDimNet2Backbone(channels, out_channels, head_2d, stages)
        self.pool = ASTP(self.backbone.out_dim)
        self.bn = nn.BatchNorm1d(self.backbone.out_dim * 2)
        self.linear = nn.Linear(self.backbone.out_dim * 2, nOut)
        self.frontend = TFMelFrontend(FEAT_DIM)  # last, as WeSpeaker's training script attaches it

    def forward(self, waveform):
        """(batch, samples) int16-range waveforms -> (batch, nOut), WeSpeaker's embedding, not normalised."""
        features = self.frontend(waveform / INT16_SCALE).unsqueeze(1)
        return self.linear(self.bn(self.pool(self.backbone(features))))


def variant_name(variant):
    name = DEFAULT_VARIANT if variant is None else str(variant).upper()
    if name not in VARIANTS:
        raise ValueError("--variant %s: ReDimNet2 comes in %s" % (variant, ", ".join(VARIANTS)))
    return name


def MainModel(nOut=192, encoder_type="SAP", variant=None, **kwargs):
    if encoder_type not in ("SAP", "ASTP"):
        raise ValueError("--encoder_type %s: ReDimNet2 pools with WeSpeaker's attentive statistics pooling "
                         "(ASTP)" % encoder_type)
    return ReDimNet2(variant_name(variant), nOut)


MainModel.default_nOut = 192  # WeSpeaker's embed_dim in redimnet2.yaml
