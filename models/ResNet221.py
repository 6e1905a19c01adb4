"""WeSpeaker's ResNet221 (Bottlenecks 6/16/48/3, TSTP pooling, 256-d embedding as its published
VoxCeleb model ResNet221-TSTP-emb256); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import Bottleneck, ResNet, check_encoder


def MainModel(nOut=256, encoder_type="SAP", **kwargs):
    check_encoder(encoder_type, "ResNet221")
    return ResNet(Bottleneck, [6, 16, 48, 3], nOut)


MainModel.default_nOut = 256  # WeSpeaker's embed_dim for its VoxCeleb models
