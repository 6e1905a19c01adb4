"""WeSpeaker's ResNet50 (Bottlenecks 3/4/6/3); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import Bottleneck, ResNet, check_encoder


def MainModel(nOut=256, encoder_type="SAP", **kwargs):
    check_encoder(encoder_type, "ResNet50")
    return ResNet(Bottleneck, [3, 4, 6, 3], nOut)


MainModel.default_nOut = 256  # WeSpeaker's embed_dim for its VoxCeleb models
