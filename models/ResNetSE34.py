"""Thin ResNet-34 ("ResNetSE34"): an SE-ResNet-34 on the instance-normalised linear spectrogram."""

from models.frontend import LinearSpectrogramInstanceNorm
from models.ResNetBlocks import ResNetSE


def MainModel(nOut=512, encoder_type="SAP", **kwargs):
    # 257 bins, halved by the stem conv, the max-pool and stages 2-4: 9 rows for the average pool.
    return ResNetSE(LinearSpectrogramInstanceNorm(), nOut, encoder_type, stem_maxpool=True,
                    strides=(1, (2, 2), (2, 2), (2, 2)), avgpool_rows=9)
