"""VGG-M-40 ("VGGVox"): the VGG-M style CNN of the VoxCeleb papers on 40 log-mel bands."""

import torch.nn as nn

from models.frontend import LogMelInstanceNorm
from models.pooling import PooledEmbeddingModel

LAST_KERNEL_ROWS = 4

# Speed on CUDA (voxtrainer/precision.py), measured on one H200 (issue 22): channels_last steps are
# faster than contiguous ones for this network; cuDNN benchmark is left off until tools/gpu_check
# has measured its speed and memory here.
CUDA_MEMORY_FORMAT = "channels_last"
CUDNN_BENCHMARK = False


def conv_bn_relu(in_channels, out_channels, **conv_args):
    return [nn.Conv2d(in_channels, out_channels, **conv_args), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class VGGVox(PooledEmbeddingModel):
    def __init__(self, nOut=512, encoder_type="SAP", n_mels=40, **kwargs):
        super().__init__()
        # Layer indices (and so checkpoint keys netcnn.0, .1, .4, ...) follow the original Sequential.
        self.netcnn = nn.Sequential(
            *conv_bn_relu(1, 96, kernel_size=(5, 7), stride=(1, 2), padding=(2, 2)),
            nn.MaxPool2d(kernel_size=(1, 3), stride=(1, 2)),
            *conv_bn_relu(96, 256, kernel_size=(5, 5), stride=(2, 2), padding=(1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            *conv_bn_relu(256, 384, kernel_size=(3, 3), padding=(1, 1)),
            *conv_bn_relu(384, 256, kernel_size=(3, 3), padding=(1, 1)),
            *conv_bn_relu(256, 256, kernel_size=(3, 3), padding=(1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            # Spans the 4 remaining frequency rows, leaving one row per time step.
            *conv_bn_relu(256, 512, kernel_size=(4, 1), padding=(0, 0)),
        )
        self.init_encoder(encoder_type, 512, nOut)
        self.torchfb = LogMelInstanceNorm(n_mels)

    def forward(self, waveform):
        x = self.netcnn(self.torchfb(waveform))
        return self.embed(x.squeeze(2))


def pooled_rows(n_mels):
    """Frequency rows left for the last convolution, whose (4, 1) kernel must span exactly all of them:
    the 5x5 stride-2 convolution (padding 1) and the two 3x3 stride-2 max-pools reduce them."""
    rows = (n_mels + 2 - 5) // 2 + 1
    for _ in range(2):
        rows = (rows - 3) // 2 + 1
    return rows


def MainModel(nOut=512, encoder_type="SAP", n_mels=40, **kwargs):
    if pooled_rows(n_mels) != LAST_KERNEL_ROWS:
        raise ValueError("--n_mels %d: VGGVox is built for 40 mel bands (39 to 46 leave the 4 rows its last "
                         "convolution spans)" % n_mels)
    return VGGVox(nOut=nOut, encoder_type=encoder_type, n_mels=n_mels, **kwargs)
