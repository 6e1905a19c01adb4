"""WeSpeaker's ResNet34 (BasicBlocks 3/4/6/3); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import BasicBlock, resnet_model

# Speed on CUDA (voxtrainer/precision.py), measured on one H200 (issue 22): channels_last steps are
# faster than contiguous ones for this network; cuDNN benchmark is left off until tools/gpu_check
# has measured its speed and memory here.
CUDA_MEMORY_FORMAT = "channels_last"
CUDNN_BENCHMARK = False

MainModel = resnet_model(BasicBlock, [3, 4, 6, 3], "ResNet34")
