"""Every recipe under configs/ is a valid set of flags that builds its network and loss: a recipe
that no longer parses (a renamed flag, a removed model) fails here, not after a download."""

import glob
import os

import pytest
import torch

from voxtrainer.cli.flags import build_parser, parse_args
from voxtrainer.cli.build import resolve_group_sizes
from voxtrainer.config import read_config
from voxtrainer.network import SpeakerNet
from voxtrainer.plugins import load_plugin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))


def test_the_published_recipes_are_there():
    names = {os.path.relpath(path, ROOT) for path in RECIPES}
    for recipe in ["resnet34_aam", "resnet34_aam_lm", "ecapa512_aam", "ecapa1024_aam", "ecapa_aam_lm",
                   "resnetse34v2_softmaxproto"]:
        assert os.path.join("configs", "voxceleb", recipe + ".yaml") in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: os.path.relpath(path, ROOT))
def test_a_recipe_parses_and_builds_its_network_and_loss(path):
    settings = read_config(path, build_parser())
    args = parse_args(["--config", path])
    for name, value in settings.items():
        assert getattr(args, name) == value
    for kind, name in [("optimizer", args.optimizer), ("scheduler", args.scheduler)]:
        load_plugin(kind, name)
    nClasses, _ = resolve_group_sizes(args, load_plugin("loss", args.trainfunc))
    with torch.device("meta"):  # shapes only: the 1024-channel ECAPA need not be allocated
        net = SpeakerNet(model=args.model, trainfunc=args.trainfunc, nOut=args.nOut, encoder_type=args.encoder_type,
                         nClasses=nClasses, margin=args.margin, scale=args.scale, n_mels=args.n_mels,
                         log_input=args.log_input, channels=args.channels, subcenters=args.subcenters)
    assert net.__S__ is not None and net.__L__ is not None
