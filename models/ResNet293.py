"""WeSpeaker's ResNet293 (Bottlenecks 10/20/64/3, TSTP pooling, 256-d embedding as its published
VoxCeleb model ResNet293-TSTP-emb256); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import Bottleneck, ResNet, check_encoder


def MainModel(nOut=256, encoder_type="SAP", **kwargs):
    check_encoder(encoder_type, "ResNet293")
    return ResNet(Bottleneck, [10, 20, 64, 3], nOut)


MainModel.default_nOut = 256  # WeSpeaker's embed_dim for its VoxCeleb models
