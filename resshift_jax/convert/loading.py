"""Build the networks from architecture params and load their weights from any format.

Weights come either as a PyTorch `.pth` (read torch-free, mapped strictly) or as a
converted `.safetensors` file written by `python -m resshift_jax.convert`, whose metadata
carries the architecture so it loads on its own.
"""
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from flax import traverse_util

from resshift_jax.convert.pth import CheckpointError, load_state_dict

KINDS = ("unet", "vq")


def plain_params(params) -> dict:
    """ConfigDict / FrozenDict / dict -> plain JSON-able dict."""
    return json.loads(json.dumps(params.to_dict() if hasattr(params, "to_dict") else dict(params)))


def build_model(kind: str, params, dtype=jnp.float32):
    """The Flax module of `kind` ('unet' or 'vq') for the reference's architecture params."""
    params = plain_params(params)
    if kind == "unet":
        from resshift_jax.models.unet import UNetModelSwin
        return UNetModelSwin(**params, dtype=dtype)
    if kind == "vq":
        from resshift_jax.models.autoencoder import VQModel
        return VQModel(**params, dtype=dtype)
    raise ValueError(f"unknown model kind {kind!r}, expected one of {KINDS}")


def params_from_state_dict(kind: str, state_dict: dict, model):
    """Map a torch state dict onto the model's parameter tree (strict)."""
    if kind == "unet":
        from resshift_jax.convert.unet import unet_params_from_torch
        return unet_params_from_torch(state_dict, model)
    from resshift_jax.convert.vq import vq_params_from_torch
    return vq_params_from_torch(state_dict, model)


def save_converted(path, kind: str, arch_params, params) -> pathlib.Path:
    """Write params as safetensors (keys 'a/b/c'), the architecture in its metadata and beside it."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}
    meta = {"kind": kind, "params": plain_params(arch_params)}
    tmp = path.with_name(path.name + ".tmp")
    safetensors.numpy.save_file(flat, str(tmp), metadata={"resshift_jax": json.dumps(meta)})
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return path


def read_converted(path):
    """(kind, arch params, param tree) of a converted `.safetensors` file."""
    path = os.fspath(path)
    try:
        from safetensors import safe_open
        with safe_open(path, framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["resshift_jax"])
            flat = {tuple(k.split("/")): f.get_tensor(k) for k in f.keys()}
    except (KeyError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a converted resshift-jax weights file ({e})") from None
    return meta["kind"], meta["params"], traverse_util.unflatten_dict(flat)


def _example_inputs(kind: str, model):
    if kind == "unet":
        from resshift_jax.models.unet import example_inputs
        return example_inputs(model)
    return (jnp.zeros((1, 32, 32, 3), jnp.float32),)  # the encoder's strides divide 32


def check_fits(kind: str, source, params, model) -> None:
    """CheckpointError naming `source` unless `params` has `model`'s parameter names and shapes
    (shapes only: nothing is computed)."""
    template = jax.eval_shape(model.init, jax.random.key(0),
                              *_example_inputs(kind, model))["params"]
    want = jax.tree.map(lambda x: tuple(x.shape), template)
    got = jax.tree.map(lambda x: tuple(np.shape(x)), params)
    if want != got:
        raise CheckpointError(f"{source}: weights do not fit this architecture "
                              "(parameter names or shapes differ)")


def load_params(kind: str, path, model):
    """Load `model`'s params from a `.pth` or converted `.safetensors` file (float32); either
    must fit `model` exactly (one-line CheckpointError otherwise)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        file_kind, _, params = read_converted(path)
        if file_kind != kind:
            raise CheckpointError(f"{path}: holds {file_kind} weights, expected {kind}")
        check_fits(kind, path, params, model)
        return jax.tree.map(jnp.asarray, params)
    state_dict = load_state_dict(path)
    try:
        params = params_from_state_dict(kind, state_dict, model)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return jax.tree.map(jnp.asarray, params)
