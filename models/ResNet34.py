"""WeSpeaker's ResNet34 (BasicBlocks 3/4/6/3); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import BasicBlock, ResNet, check_encoder


def MainModel(nOut=256, encoder_type="SAP", **kwargs):
    check_encoder(encoder_type, "ResNet34")
    return ResNet(BasicBlock, [3, 4, 6, 3], nOut)


MainModel.default_nOut = 256  # WeSpeaker's embed_dim for its VoxCeleb models
