"""WeSpeaker's ResNet293 (Bottlenecks 10/20/64/3, TSTP pooling, 256-d embedding as its published
VoxCeleb model ResNet293-TSTP-emb256); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import Bottleneck, resnet_model

MainModel = resnet_model(Bottleneck, [10, 20, 64, 3], "ResNet293")
