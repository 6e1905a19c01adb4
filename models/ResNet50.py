"""WeSpeaker's ResNet50 (Bottlenecks 3/4/6/3); WeSpeaker checkpoints load as they are
(models/wespeaker_resnet.py)."""

from models.wespeaker_resnet import Bottleneck, resnet_model

MainModel = resnet_model(Bottleneck, [3, 4, 6, 3], "ResNet50")
