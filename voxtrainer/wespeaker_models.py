"""What a WeSpeaker checkpoint holds, told from its key names and shapes, so that a checkpoint that
does not fit the chosen --model is refused with a line naming the network it is.

Each architecture has a fingerprint: a few keys with the shape they must have (None: any size
along that axis; ABSENT: the key must not be there) that no other WeSpeaker architecture shares,
and the key whose first axis is the embedding size. The facts were read from WeSpeaker's own
model classes (wenet-e2e/wespeaker at dfa7419, VoxCeleb configurations: fbank80 ResNets and
ERes2Nets, ECAPA-TDNN and CAM++; ReDimNet2 on 72 mel bands); tests/test_deep_resnets.py checks
that each of WeSpeaker's full key lists is named as its own architecture and no other."""

ABSENT = "absent"


def resnet(layer3_blocks, bottleneck):
    """WeSpeaker's ResNets differ in block type and depth; the third stage's block count alone
    tells their depths apart (2, 6 / 6, 23, 36, 48, 64). ERes2Net has no conv2 in its blocks."""
    return {"conv1.weight": (32, 1, 3, 3), "layer1.0.conv2.weight": (32, 32, None, None),
            "layer1.0.conv3.weight": (128, 32, 1, 1) if bottleneck else ABSENT,
            "layer3.%d.conv1.weight" % (layer3_blocks - 1): None, "layer3.%d.conv1.weight" % layer3_blocks: ABSENT}


def ecapa(channels, global_context):
    """Channels from the first TDNN layer; GLOB pools with the utterance's mean and deviation
    appended to every frame: three times the attention's input."""
    return {"layer1.conv.weight": (channels, None, 5),
            "pool.linear1.weight": (128, 4608 if global_context else 1536, 1)}


def eres2net(stem_channels, bottleneck_shape):
    return {"conv1.weight": (stem_channels, 1, 3, 3), "layer1.0.convs.0.weight": None,
            "fuse_mode1234.local_att.0.weight": None, "layer1.0.conv3.weight": bottleneck_shape + (1, 1)}


def redimnet2(stem_channels):
    """ReDimNet2's sizes B0-B6 differ in their base width C, the stem's channel count."""
    return {"backbone.stem.0.weight": (stem_channels, 1, 3, 3), "backbone.fin_wght1d.w": None}


# (WeSpeaker's name, fingerprint, the key whose first axis is the embedding size)
ARCHITECTURES = [
    ("ResNet18", resnet(2, False), "seg_1.weight"),
    ("ResNet34", resnet(6, False), "seg_1.weight"),
    ("ResNet50", resnet(6, True), "seg_1.weight"),
    ("ResNet101", resnet(23, True), "seg_1.weight"),
    ("ResNet152", resnet(36, True), "seg_1.weight"),
    ("ResNet221", resnet(48, True), "seg_1.weight"),
    ("ResNet293", resnet(64, True), "seg_1.weight"),
    ("ECAPA_TDNN_c512", ecapa(512, False), "linear.weight"),
    ("ECAPA_TDNN_GLOB_c512", ecapa(512, True), "linear.weight"),
    ("ECAPA_TDNN_c1024", ecapa(1024, False), "linear.weight"),
    ("ECAPA_TDNN_GLOB_c1024", ecapa(1024, True), "linear.weight"),
    ("CAMPPlus", {"head.conv1.weight": (32, 1, 3, 3), "xvector.tdnn.linear.weight": None},
     "xvector.dense.linear.weight"),
    ("ERes2Net34_Base", eres2net(32, (64, 32)), "seg_1.weight"),
    ("ERes2Net34_Large", eres2net(64, (128, 64)), "seg_1.weight"),
    ("ERes2Net34_aug", eres2net(64, (256, 72)), "seg_1.weight"),
] + [("ReDimNet2B%d" % size, redimnet2(width), "linear.weight")
     for size, width in enumerate((12, 16, 20, 24, 32, 48, 64))]

# This project's flags for the architectures it builds under the same name (others have their own).
PROJECT_FLAGS = {"ResNet18": "--model ResNet18", "ResNet34": "--model ResNet34", "ResNet50": "--model ResNet50",
                 "ResNet221": "--model ResNet221", "ResNet293": "--model ResNet293",
                 "ECAPA_TDNN_GLOB_c512": "--model ECAPA_TDNN --channels 512",
                 "ECAPA_TDNN_GLOB_c1024": "--model ECAPA_TDNN --channels 1024"}

BATCHNORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def shape_fits(shape, wanted):
    return len(shape) == len(wanted) and all(want is None or size == want for size, want in zip(shape, wanted))


def fits(shapes, fingerprint):
    """Whether `shapes` (key -> tuple) has every fact of `fingerprint`."""
    for key, wanted in fingerprint.items():
        if wanted == ABSENT:
            if key in shapes:
                return False
        elif key not in shapes or (wanted is not None and not shape_fits(shapes[key], wanted)):
            return False
    return True


def identify(shapes):
    """(WeSpeaker architecture name, embedding size) of a state_dict's key -> shape mapping
    (WeSpeaker's key names, no prefix), or None when no fingerprint fits."""
    for name, fingerprint, embedding_key in ARCHITECTURES:
        if fits(shapes, fingerprint):
            embedding = shapes.get(embedding_key)
            return name, embedding[0] if embedding else None
    return None


def parameter_count(shapes):
    """Values in the weights, BatchNorm's running statistics not counted (a checkpoint does not
    say which of its other tensors are buffers)."""
    total = 0
    for key, shape in shapes.items():
        if not key.endswith(BATCHNORM_STATISTICS):
            count = 1
            for size in shape:
                count *= size
            total += count
    return total


def describe(shapes):
    """What a state_dict (key -> shape, WeSpeaker's key names) holds, for an error line: 'a
    WeSpeaker ResNet221 (256-d embedding; --model ResNet221)' or, for no known architecture, its
    size, top-level modules and last weight."""
    found = identify(shapes)
    if found:
        name, embedding = found
        details = ["%d-d embedding" % embedding] if embedding else []
        details += [PROJECT_FLAGS[name]] if name in PROJECT_FLAGS else []
        return "a WeSpeaker %s%s" % (name, " (%s)" % "; ".join(details) if details else "")
    modules = list(dict.fromkeys(key.split(".")[0] for key in shapes))
    weights = [key for key in shapes if key.endswith("weight") and len(shapes[key]) >= 2]
    last = "; last weight %s %s" % (weights[-1], "x".join(map(str, shapes[weights[-1]]))) if weights else ""
    return "an unrecognised network of %.2f M parameters (top-level modules %s%s)%s" % (
        parameter_count(shapes) / 1e6, ", ".join(modules[:6]), ", ..." if len(modules) > 6 else "", last)
