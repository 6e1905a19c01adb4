"""WeSpeaker's ResNet18 (BasicBlocks 2/2/2/2); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import BasicBlock, resnet_model

MainModel = resnet_model(BasicBlock, [2, 2, 2, 2], "ResNet18")
