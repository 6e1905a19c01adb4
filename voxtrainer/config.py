"""YAML configuration files: `--config FILE` sets any flag by its name (the command line wins),
and a training run saves its resolved settings as save_path/config.yaml, which --config accepts."""

import os

import yaml

from voxtrainer.atomic import write_text
from voxtrainer.errors import InputError

ALIASES = {"encoder": "encoder_type"}  # the seed README's spelling
SAVED_FILE = "config.yaml"


def read_config(path, known_settings):
    """Flag values from a YAML mapping; InputError for a missing or malformed file or a name that
    is not in `known_settings`."""
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle) or {}
    except OSError as error:
        raise InputError("%s: cannot read config (%s)" % (path, error.strerror))
    except yaml.YAMLError as error:
        raise InputError("%s: invalid YAML (%s)" % (path, str(error).splitlines()[0]))
    if not isinstance(config, dict):
        raise InputError("%s: expected a mapping of flag names to values" % path)
    config = {ALIASES.get(key, key): value for key, value in config.items()}
    unknown = sorted(set(config) - set(known_settings))
    if unknown:
        raise InputError("%s: unknown setting(s) %s" % (path, ", ".join(map(str, unknown))))
    return config


def save_config(save_path, settings):
    """save_path/config.yaml: every setting of the run, for `--config` to reproduce it."""
    os.makedirs(save_path, exist_ok=True)
    write_text(os.path.join(save_path, SAVED_FILE), yaml.safe_dump(dict(sorted(settings.items())),
                                                                  default_flow_style=False))
