"""WeSpeaker's ResNet221 (Bottlenecks 6/16/48/3, TSTP pooling, 256-d embedding as its published
VoxCeleb model ResNet221-TSTP-emb256); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import Bottleneck, resnet_model

MainModel = resnet_model(Bottleneck, [6, 16, 48, 3], "ResNet221")
