"""Config files (`configs/*.py`, given as `PATH` or `PATH:ARG`) for the command lines.

Whatever is wrong with one (missing, not Python, raising, no `get_config`, returning no
ConfigDict) is a one-line `ConfigError` naming the file, never a traceback. `load` is for
argparse tools; `DEFINE_config_file` is ml_collections' flag (with its `--config.x=...`
overrides) loading through `load`, and `parse_flags` the `flags_parser` to give
`absl.app.run` so that such an error prints as `error: ...` and exits with status 2.
"""
import importlib.machinery
import importlib.util
import os
import re
import sys
import traceback

import ml_collections
from absl import flags
from ml_collections import config_flags

flags.disclaim_key_flags()  # the flag belongs to the script that defines it


class ConfigError(Exception):
    """A config file that cannot be used; the message names it and says why.

    Not a ValueError: absl would re-wrap it into a multi-line flag error."""


def _problem(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _where(path: str, err: BaseException) -> str:
    """`path, line N` at the config file's innermost frame in `err`'s traceback."""
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__)
             if os.path.abspath(frame.filename) == os.path.abspath(path)]
    return f"{path}, line {lines[-1]}" if lines else path


def load(spec: str) -> ml_collections.ConfigDict:
    """`get_config()` of the file `spec` names, or `get_config(ARG)` for `PATH:ARG`."""
    path, colon, arg = spec.partition(":")
    if not path:
        raise ConfigError("no config file given")
    if not os.path.isfile(path):
        problem = "is not a file" if os.path.exists(path) else "no such config file"
        raise ConfigError(f"{path}: {problem}")
    name = "config_" + "".join(c if c.isalnum() else "_" for c in os.path.basename(path))
    loader = importlib.machinery.SourceFileLoader(name, path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    sys.modules[name] = module  # as an import would: dataclasses in the file need it
    try:
        loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 -- any failure of the user's file is its problem
        raise ConfigError(f"{_where(path, err)}: loading it raised {_problem(err)}") from None
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"{path}: defines no get_config()")
    call = f"get_config({arg!r})" if colon else "get_config()"
    try:
        config = get_config(arg) if colon else get_config()
    except Exception as err:  # noqa: BLE001
        raise ConfigError(f"{_where(path, err)}: {call} raised {_problem(err)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}: {call} returned {type(config).__name__}, not a ConfigDict")
    return config


class _Parser(flags.ArgumentParser):
    def __init__(self, lock_config: bool):
        self.lock_config = lock_config

    def parse(self, argument):
        config = load(argument)
        if self.lock_config:
            config.lock()
        return config

    def flag_type(self):
        return "config object"


def DEFINE_config_file(name: str, help_string: str, lock_config: bool = True):  # noqa: N802
    """ml_collections' config file flag (no default), loaded by `load`."""
    holder = config_flags.DEFINE_config_file(name, None, help_string, lock_config=lock_config)
    flags.FLAGS[name].parser = _Parser(lock_config)
    return holder


def parse_flags(argv):
    """absl's flag parsing; any argument problem (a config file's, an override
    `--config.PATH=...` of a field it does not have, an unknown flag or a bad value) as one
    line and status 2."""
    try:
        return flags.FLAGS(argv)
    except ConfigError as err:
        message = str(err)
    except flags.Error as err:
        message = f"{' '.join(str(err).split())} (--helpfull lists the flags)"
    except (AttributeError, KeyError, IndexError) as err:  # ml_collections, on such a PATH
        if not any(re.match(r"--?\w+\.\w", arg) for arg in argv[1:]):
            raise
        field = str(err).strip("\"'")
        overrides = [arg for arg in argv[1:] if re.match(r"--?\w+\.\w", arg)]
        named = [arg for arg in overrides if field in re.split(r"[.=]", arg)[1:]] or overrides
        message = f"{named[0]}: the config has no such field ({field!r})"
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
