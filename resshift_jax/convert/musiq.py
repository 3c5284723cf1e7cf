"""MUSIQ weights for pyiqa's `musiq` from the file pyiqa downloads (musiq_koniq_ckpt-e95806b9.pth).

The architecture is read off the state dict (hidden size, MLP width, depth, classes); heads
are hidden / 64 as in every released MUSIQ (384 / 6). Returns a scorer that patches each
image on the host and runs the jitted network on the batch.
"""
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.convert.pth import CheckpointError, load_state_dict
from resshift_jax.models.musiq import MUSIQ, multiscale_patches
from resshift_jax.models.torch_layers import state_dict_to_params

MUSIQ_FILE = "musiq_koniq_ckpt-e95806b9.pth"


def musiq_from_state_dict(sd: dict, heads: int = None):
    """(MUSIQ module, params); ValueError if `sd` is not a pyiqa MUSIQ state dict."""
    try:
        hidden, _ = sd["embedding.weight"].shape
        mlp_dim = sd["transformer_encoder.transformer.encoderblock_0.mlp.fc1.weight"].shape[0]
        head = sd["head.weight"] if "head.weight" in sd else sd["head.0.weight"]
    except KeyError as e:
        raise ValueError(f"not a pyiqa MUSIQ state dict (no {e.args[0]})") from None
    layers = len({k.split(".")[2] for k in sd if k.startswith("transformer_encoder.transformer.")})
    model = MUSIQ(hidden, mlp_dim, heads or hidden // 64, layers, head.shape[0])
    params = state_dict_to_params(sd)
    shapes = jax.eval_shape(model.init, jax.random.key(0), *_dummy())["params"]
    if jax.tree.structure(shapes) != jax.tree.structure(params) or any(
            a.shape != b.shape for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(params))):
        raise ValueError("state dict does not fit pyiqa's MUSIQ architecture")
    return model, params


def _dummy():
    p = multiscale_patches(np.zeros((32, 32, 3), np.float32))
    return tuple(jnp.asarray(p[k][None]) for k in ("tokens", "spatial", "scale", "mask"))


def musiq_scorer(model, params):
    """images (B, H, W, 3) in [0, 1] (host or device) -> (B,) MUSIQ scores."""
    apply = jax.jit(model.apply)

    def score(images):
        patches = [multiscale_patches(im) for im in np.asarray(images)]
        batch = [jnp.asarray(np.stack([p[k] for p in patches]))
                 for k in ("tokens", "spatial", "scale", "mask")]
        return apply({"params": params}, *batch)
    return score


def load_musiq(path):
    """A MUSIQ scorer from the user's file; CheckpointError names the file."""
    try:
        return musiq_scorer(*musiq_from_state_dict(load_state_dict(path)))
    except CheckpointError:
        raise  # names the file already
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
