"""YAML configuration files: `--config FILE` sets any flag by its name (the command line wins),
and a training run saves its resolved settings as save_path/config.yaml, which --config accepts."""

import argparse
import math

import yaml

from voxtrainer.atomic import write_text
from voxtrainer.errors import InputError

ALIASES = {"encoder": "encoder_type"}  # the seed README's spelling


FLOAT32_MAX = 3.4028234663852886e38  # every number flag ends up in float32 tensors or arithmetic


def whole_number(minimum=None, maximum=None):
    """An argparse type: an integer, at least `minimum` and at most `maximum` where given."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a whole number, not %r" % text)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError("must be at least %d, not %d" % (minimum, value))
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError("must be at most %d, not %d" % (maximum, value))
        return value
    parse.__name__ = "whole number"
    return parse


def truth_value(text):
    """An argparse type: True or False spelt true/false, yes/no, on/off or 1/0 (any case); the 2021
    trainer's `--log_input True` and `--log_input False` both mean what they say."""
    value = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}.get(str(text).strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError("expected True or False, not %r" % text)
    return value


truth_value.__name__ = "truth value"


def real_number(minimum=None, maximum=None, above=False):
    """An argparse type: a finite number within [minimum, maximum] where given (above `minimum`,
    not equal to it, with `above`), and within float32's range, where it is used."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a number, not %r" % text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError("must be a finite number, not %r" % text)
        if abs(value) > FLOAT32_MAX:
            raise argparse.ArgumentTypeError("must be within float32's range (at most %g in size), not %r" % (
                FLOAT32_MAX, text))
        if above and value == minimum:
            raise argparse.ArgumentTypeError("must be above %g, not %g" % (minimum, value))
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = ("at least %g" % minimum if maximum is None else "at most %g" % maximum if minimum is None
                      else "between %g and %g" % (minimum, maximum))
            raise argparse.ArgumentTypeError("must be %s, not %g" % (bounds, value))
        return value
    parse.__name__ = "number"
    return parse


class OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes are InputErrors: one line naming the flag, exit status 2, like every
    other bad input (argparse would print the whole usage first)."""

    def error(self, message):
        raise InputError("%s (see --help)" % message)


def checked_value(action, value, path):
    """A YAML value for the flag of `action`, held to the command line's rules: the type (a YAML
    string "false" is not a switch's false), the range and the choices."""
    where = "%s: %s" % (path, action.dest)
    if action.nargs == 0:  # a switch: store_true
        if not isinstance(value, bool):
            raise InputError("%s: expected true or false, not %r" % (where, value))
        return value
    if value is None and action.default is None:
        return None
    if action.nargs == 2 and isinstance(value, list) and len(value) == 2 and all(isinstance(item, str)
                                                                                 for item in value):
        return value  # --verify A B
    value = yaml_exponent_number(action, value)
    if action.type is truth_value:
        if not isinstance(value, bool):
            raise InputError("%s: expected true or false, not %r" % (where, value))
        return value
    expected = {int: int, float: (int, float)}.get(action.type, str)
    if getattr(action.type, "__name__", "") == "whole number":
        expected = int
    elif getattr(action.type, "__name__", "") == "number":
        expected = (int, float)
    if isinstance(value, bool) or not isinstance(value, expected):
        raise InputError("%s: expected %s, not %r" % (where, "a whole number" if expected is int else
                                                      "a number" if expected != str else "a string", value))
    if action.type is not None and not isinstance(action.type, type):
        try:
            value = action.type(str(value))
        except argparse.ArgumentTypeError as error:
            raise InputError("%s: %s" % (where, error))
    if action.choices is not None and value not in action.choices:
        raise InputError("%s: %r is not one of %s" % (where, value, ", ".join(map(str, action.choices))))
    return value


def yaml_exponent_number(action, value):
    """YAML 1.1 (PyYAML) reads `1e-3` as a string, being stricter than the command line; for a
    number flag such a string is read as the command line reads it. A quoted string that is not a
    number in exponent form stays a string, and is refused."""
    if isinstance(value, str) and getattr(action.type, "__name__", "") == "number" and "e" in value.lower():
        try:
            return float(value)
        except ValueError:
            return value
    return value


def read_config(path, parser):
    """Flag values from a YAML mapping, each checked as the command line would check it;
    InputError for a missing or malformed file, an unknown name or a bad value."""
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
    actions = {action.dest: action for action in parser._actions if action.dest != "help"}
    unknown = sorted(set(map(str, config)) - set(actions))
    if unknown:
        raise InputError("%s: unknown setting(s) %s" % (path, ", ".join(unknown)))
    return {name: checked_value(actions[name], value, path) for name, value in config.items()}


def save_config(path, settings):
    """Every setting of the run (the experiment folder's config.yaml), for `--config` to reproduce it."""
    write_text(path, yaml.safe_dump(dict(sorted(settings.items())), default_flow_style=False))
