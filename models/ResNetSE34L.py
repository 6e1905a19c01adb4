"""Fast ResNet-34 ("ResNetSE34L"): a quarter-width SE-ResNet-34 on log-mel bands (40 by default).

`n_mels` and `log_input` are the 2021 trainer's options (--n_mels, --log_input); their defaults
give the 2020 model. A 2021 checkpoint brings its own front-end buffers (a Hamming window where
this file builds the 2020 Hann window), and loading it replaces them."""

from models.frontend import LogMelInstanceNorm
from models.ResNetBlocks import ResNetSE

# Speed on CUDA (voxtrainer/precision.py), measured on one H200 (issue 22): channels_last steps are
# faster than contiguous ones for this network; cuDNN benchmark is left off until tools/gpu_check
# has measured its speed and memory here.
CUDA_MEMORY_FORMAT = "channels_last"
CUDNN_BENCHMARK = False

PROTOCOL = "2020"  # the audio protocol (voxtrainer/reading/audio.py) when --protocol is not given


def halved(rows, times):
    """Rows left after `times` stride-2 convolutions that pad to keep ceil(rows / 2)."""
    for _ in range(times):
        rows = (rows + 1) // 2
    return rows


def MainModel(nOut=512, encoder_type="SAP", n_mels=40, log_input=True, **kwargs):
    # The stem conv and stages 2-3 halve the bands (40 -> 5 rows), which the average pool collapses.
    return ResNetSE(LogMelInstanceNorm(n_mels, log_input=log_input), nOut, encoder_type, stem_maxpool=False,
                    strides=(1, (2, 2), (2, 2), 1), avgpool_rows=halved(n_mels, 3))
