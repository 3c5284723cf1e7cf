"""Tensors of a TorchScript archive (`torch.jit.save`, e.g. OpenAI's CLIP `RN50.pt`), torch-free.

A TorchScript archive is the same zip as a `.pth`, but its `data.pkl` pickles the module tree:
objects of `__torch__.*` classes whose attribute dicts hold submodules and tensors. They are
rebuilt as plain attribute holders (no code runs) and flattened to `a.b.c` keys, as
`torch.jit.load(f).state_dict()` names them, plus any other tensor attributes.
"""
import os
import pickle
import zipfile

import numpy as np

from resshift_jax.convert import pth


class _ScriptObject:
    """Stands in for any `__torch__.*` class; BUILD fills its __dict__."""


_JIT_LIST_BUILDERS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist",
                      "build_list")


class _Unpickler(pth._Unpickler):
    def find_class(self, module, name):
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        if module == "torch.jit._pickle" and name in _JIT_LIST_BUILDERS:
            return lambda data: data
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return lambda value, _tag: value
        return super().find_class(module, name)


def _flatten(obj, prefix: str, out: dict) -> None:
    for key, value in vars(obj).items():
        if isinstance(value, np.ndarray):
            out[prefix + key] = value
        elif isinstance(value, _ScriptObject):
            _flatten(value, f"{prefix}{key}.", out)


def load_torchscript(path) -> dict:
    """{dotted name: numpy array} of every tensor attribute of the archived module tree."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise pth.CheckpointError(f"{path}: no such file")
    try:
        root = pth._load_zip(path, _Unpickler)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, zipfile.BadZipFile,
            IndexError, TypeError, AttributeError) as e:
        raise pth.CheckpointError(f"{path}: not a readable TorchScript archive ({e})") from None
    if not isinstance(root, _ScriptObject):
        raise pth.CheckpointError(f"{path}: not a TorchScript archive (holds {type(root).__name__})")
    out: dict = {}
    _flatten(root, "", out)
    return out


def load_tensors(path) -> dict:
    """A TorchScript archive's tensors, or a plain `.pth` state dict's (CLIP files come as both)."""
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            scripted = any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
        if scripted:
            return load_torchscript(path)
    return pth.load_state_dict(path)
