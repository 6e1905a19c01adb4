"""Fast ResNet-34 ("ResNetSE34L"): a quarter-width SE-ResNet-34 on 40 log-mel bands."""

from models.frontend import LogMelInstanceNorm
from models.ResNetBlocks import ResNetSE


def MainModel(nOut=512, encoder_type="SAP", n_mels=40, **kwargs):
    # 40 mel bands, halved by the stem conv and stages 2-3: 5 rows for the average pool.
    return ResNetSE(LogMelInstanceNorm(n_mels), nOut, encoder_type, stem_maxpool=False,
                    strides=(1, (2, 2), (2, 2), 1), avgpool_rows=5)
