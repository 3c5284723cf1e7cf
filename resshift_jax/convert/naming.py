"""Strict mapping between a Flax param tree and a PyTorch state dict, by name.

Flax module names are the reference's module paths with `.` written as `_` (see
models/layers.py); `torch_name` undoes that, and the leaf rules transpose kernels:
conv HWIO <-> OIHW, dense (in, out) <-> (out, in), norm scale <-> weight.
"""
import re
from typing import Callable, Dict, Tuple

import jax
import numpy as np
from flax import traverse_util

_INDEX = re.compile(r"_(\d+)(?=_|$)")
_LEAVES = {"kernel": "weight", "scale": "weight", "bias": "bias", "embedding": "weight"}


def dotted(component: str, literal: Dict[str, str]) -> str:
    """`input_blocks_3_0_op` -> `input_blocks.3.0.op`; names in `literal` map as given."""
    if component in literal:
        return literal[component]
    name = _INDEX.sub(r".\1", component)
    for suffix in ("_op", "_conv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)] + "." + suffix[1:]
    return name


def torch_name(path: Tuple[str, ...], rename: Callable[[str], str]) -> str:
    """The state-dict key of the Flax param at `path` (GroupNorm32's inner `norm` is transparent)."""
    modules = path[:-2] if len(path) > 2 and path[-2] == "norm" else path[:-1]
    return ".".join([rename(c) for c in modules] + [_LEAVES.get(path[-1], path[-1])])


def to_torch_layout(flax_path: Tuple[str, ...], value: np.ndarray) -> np.ndarray:
    if flax_path[-1] == "kernel":
        return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
    return value


def from_torch_layout(flax_path: Tuple[str, ...], value: np.ndarray) -> np.ndarray:
    if flax_path[-1] == "kernel":
        return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
    return value


def _names(template, rename) -> Dict[Tuple[str, ...], str]:
    flat = traverse_util.flatten_dict(template)
    return {path: torch_name(path, rename) for path in flat}


def params_from_torch(state_dict: Dict[str, np.ndarray], template, rename,
                      derived: Callable[[str], bool] = lambda name: False,
                      check_derived: Callable[[str, np.ndarray], None] = lambda n, v: None):
    """Fill `template` (shapes) from `state_dict`; every tensor used, every param filled.

    `derived(name)` marks buffers that are computed, not loaded (checked by
    `check_derived` when present). Raises ValueError naming the first problems.
    """
    flat = traverse_util.flatten_dict(template)
    names = _names(template, rename)
    missing, misshaped, out = [], [], {}
    for path, spec in flat.items():
        name = names[path]
        if name not in state_dict:
            missing.append(name)
            continue
        value = from_torch_layout(path, np.asarray(state_dict[name], np.float32))
        if tuple(value.shape) != tuple(spec.shape):
            misshaped.append(f"{name} {tuple(state_dict[name].shape)} (expected "
                             f"{tuple(to_torch_layout(path, np.empty(spec.shape, np.uint8)).shape)})")
            continue
        out[path] = value
    used = set(names.values())
    unexpected = []
    for name, value in state_dict.items():
        if name in used:
            continue
        if derived(name):
            check_derived(name, np.asarray(value))
        else:
            unexpected.append(name)
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("wrong shape", misshaped)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}")
    if problems:
        raise ValueError("checkpoint does not fit the architecture: " + "; ".join(problems))
    return traverse_util.unflatten_dict(out)


def params_to_torch(params, rename) -> Dict[str, np.ndarray]:
    flat = traverse_util.flatten_dict(jax.tree.map(np.asarray, params))
    return {torch_name(path, rename): to_torch_layout(path, value) for path, value in flat.items()}
