"""WeSpeaker's ResNet34 (BasicBlocks 3/4/6/3); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import BasicBlock, resnet_model

MainModel = resnet_model(BasicBlock, [3, 4, 6, 3], "ResNet34")
