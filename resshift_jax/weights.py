"""Every way to name a network's weights, and loading them for an architecture.

A weight spec is one of:
- a released name (`releases.CHECKPOINTS`: "v3", "vqgan", ...): downloaded into
  `weights_dir` on first use and converted once to `.safetensors` beside the `.pth`;
- a PyTorch `.pth` (read torch-free, mapped strictly) or a converted `.safetensors`;
- a training workdir (`train.py --workdir`), its `checkpoints/` folder, or one step of
  it: the latest step's EMA weights (`ema=False`: the raw weights), as validation uses.
"""
import os
import pathlib
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.convert.loading import (build_model, check_fits, load_params, plain_params,
                                          read_converted, save_converted)
from resshift_jax.convert.pth import CheckpointError
from resshift_jax.download import WeightsError, ensure_weights
from resshift_jax.releases import CHECKPOINTS

__all__ = ["CheckpointError", "WeightsError", "resolve", "load_network", "load_weights"]


def resolve(spec, weights_dir="weights") -> pathlib.Path:
    """The file or folder a spec names; a released name is downloaded if absent."""
    if spec is None or spec == "":
        raise CheckpointError("no weights given")
    spec = os.fspath(spec)
    if spec in CHECKPOINTS:
        return pathlib.Path(ensure_weights(spec, weights_dir))
    path = pathlib.Path(spec).expanduser()
    if not path.exists():
        raise CheckpointError(f"{spec}: checkpoint file not found (nor a released name: "
                              f"{', '.join(CHECKPOINTS)})")
    return path


def _step_dir(path: pathlib.Path) -> Optional[pathlib.Path]:
    """The orbax step folder holding a train state: the latest under a workdir or manager."""
    if (path / "state").is_dir():
        return path
    manager = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = sorted((int(p.name), p) for p in manager.iterdir()
                   if p.is_dir() and p.name.isdigit() and (p / "state").is_dir())
    return steps[-1][1] if steps else None


def _train_state_params(path: pathlib.Path, ema: bool) -> dict:
    """The (EMA) UNet params of a training checkpoint, read as host arrays."""
    import orbax.checkpoint as ocp
    step_dir = _step_dir(path)
    if step_dir is None:
        raise CheckpointError(f"{path}: a folder, but no training checkpoint in it "
                              "(expected WORKDIR/checkpoints/<step>/state)")
    checkpointer = ocp.PyTreeCheckpointer()
    item = (step_dir / "state").resolve()  # orbax reads no metadata through a relative path
    metadata = checkpointer.metadata(item)
    tree = getattr(metadata, "item_metadata", metadata)
    tree = getattr(tree, "tree", tree)
    key = "ema_params" if ema else "params"
    if key not in tree:
        raise CheckpointError(f"{item}: not a resshift-jax train state (no {key})")
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), dict(tree))
    state = checkpointer.restore(item, args=ocp.args.PyTreeRestore(restore_args=restore_args))
    return state[key]


def load_weights(kind: str, model, arch, spec, weights_dir="weights", *, ema: bool = True):
    """float32 params of `model` (of `kind` 'unet' or 'vq', built from `arch`) from a spec."""
    path = resolve(spec, weights_dir)
    if path.is_dir():
        if kind != "unet":
            raise CheckpointError(f"{path}: a training checkpoint holds UNet weights, not {kind}")
        params = _train_state_params(path, ema)
        check_fits(kind, path, params, model)
        return jax.tree.map(jnp.asarray, params)
    if path.suffix == ".pth" and os.fspath(spec) in CHECKPOINTS:  # released: cache conversion
        cached = path.with_suffix(".safetensors")
        if cached.is_file() and read_converted(cached)[1] == plain_params(arch):
            return load_params(kind, cached, model)
        params = load_params(kind, path, model)
        save_converted(cached, kind, arch, params)
        return params
    return load_params(kind, path, model)


def load_network(kind: str, arch, spec, weights_dir="weights", dtype=jnp.float32, *,
                 ema: bool = True):
    """(module computing in `dtype`, float32 params) of `kind` from any weight spec."""
    model = build_model(kind, arch, dtype=dtype)
    return model, load_weights(kind, model, arch, spec, weights_dir, ema=ema)
