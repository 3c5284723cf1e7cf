"""LPIPS weights from the user's files: torchvision's VGG16 and the lpips package's linear layers.

    vgg16-397923af.pth   (torchvision ImageNet VGG16; keys features.N.weight/bias)
    vgg.pth              (lpips/weights/v0.1/vgg.pth; keys lin0.model.1.weight ...)
"""
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.convert.pth import CheckpointError, load_state_dict
from resshift_jax.models.lpips import LPIPS, SLICES


def lpips_params_from_torch(vgg_state_dict: dict, lin_state_dict: dict) -> dict:
    """Flax LPIPS params; every conv filled and shape-checked, VGG classifier keys ignored."""
    vgg, problems = {}, []
    for convs in SLICES:
        for index, channels in convs:
            w, b = vgg_state_dict.get(f"features.{index}.weight"), vgg_state_dict.get(f"features.{index}.bias")
            if w is None or b is None:
                problems.append(f"features.{index}")
                continue
            vgg[f"features_{index}"] = {"kernel": np.asarray(w, np.float32).transpose(2, 3, 1, 0),
                                        "bias": np.asarray(b, np.float32)}
    lins = {}
    for i, (convs) in enumerate(SLICES):
        w = lin_state_dict.get(f"lin{i}.model.1.weight")
        if w is None or tuple(w.shape) != (1, convs[-1][1], 1, 1):
            problems.append(f"lin{i}.model.1.weight")
            continue
        lins[f"lin{i}"] = {"kernel": np.asarray(w, np.float32).transpose(2, 3, 1, 0)}
    unexpected = [k for k in lin_state_dict if not k.startswith("lin")]
    if problems or unexpected:
        raise ValueError(f"not LPIPS-VGG weights: missing or mis-shaped {problems[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return {"vgg": vgg, **lins}


def load_lpips(vgg_path, lin_path, dtype=jnp.float32):
    """(LPIPS module, params) from the two user-supplied files."""
    try:
        params = lpips_params_from_torch(load_state_dict(vgg_path), load_state_dict(lin_path))
    except ValueError as e:
        raise CheckpointError(f"{vgg_path} / {lin_path}: {e}") from None
    return LPIPS(dtype=dtype), jax.tree.map(jnp.asarray, params)
