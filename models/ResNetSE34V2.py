"""ResNetSE34V2 ("H / ASP"): the 2021 trainer's half-width SE-ResNet-34 on pre-emphasised log-mel
bands (--n_mels, 64 in its published model), with per-channel attentive pooling (SAP or ASP).

It reads audio by the 2021 protocol (float samples, wrap padding: voxtrainer/reading/audio.py) unless
--protocol says otherwise."""

import torch.nn as nn

from models.frontend import PreEmphasisLogMel
from models.pooling import ChannelAttentionEmbeddingModel
from models.ResNetBlocks import SEBasicBlock, SEResNetStages

PROTOCOL = "2021"  # the audio protocol this model was published with


class ResNetSE34V2(ChannelAttentionEmbeddingModel, SEResNetStages):
    """Stem conv 3x3 (with bias) -> ReLU -> BatchNorm, four SE stages (strides 1, 2, 2, 2), the
    remaining n_mels / 8 frequency rows stacked into the channels, then attentive pooling.

    Submodules are created in the 2021 model's order (stem, stages, front end, attention, fc,
    then the weight init), so a model built under a given torch seed starts from its weights and
    its state_dict keys and order are that model's."""

    def __init__(self, nOut=256, encoder_type="SAP", n_mels=40, log_input=True,
                 layers=(3, 4, 6, 3), num_filters=(32, 64, 128, 256), block=SEBasicBlock):
        super().__init__()
        self.conv1 = nn.Conv2d(1, num_filters[0], kernel_size=3, stride=1, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.inplanes = num_filters[0]
        self.make_stages(block, layers, num_filters, (1, (2, 2), (2, 2), (2, 2)))
        self.torchfb = PreEmphasisLogMel(n_mels, log_input)
        # The 2021 model sizes the pooled features as n_mels / 8 rows, truncated.
        self.init_encoder(encoder_type, num_filters[3] * block.expansion * int(n_mels / 8), nOut)
        self.init_weights()

    def forward(self, waveform):
        x = self.torchfb(waveform)
        # ReLU before BatchNorm in the stem, as the 2021 model: its checkpoints depend on it.
        x = self.stages(self.bn1(self.relu(self.conv1(x))))
        return self.embed(x.reshape(x.size(0), -1, x.size(-1)))


def MainModel(nOut=256, encoder_type="SAP", n_mels=40, log_input=True, **kwargs):
    if n_mels % 8:
        # Three stride-2 stages leave ceil(n_mels / 8) rows, and the 2021 model sizes its pooling for
        # int(n_mels / 8): only multiples of 8 agree (the 2021 trainer crashed on the others).
        raise ValueError("--n_mels %d: ResNetSE34V2 needs a multiple of 8 (its pooling takes n_mels / 8 rows; "
                         "the published model has 64)" % n_mels)
    return ResNetSE34V2(nOut=nOut, encoder_type=encoder_type, n_mels=n_mels, log_input=log_input)
