"""LPIPS weights from the user's files: torchvision's VGG16 and the lpips package's linear layers.

    vgg16-397923af.pth   (torchvision ImageNet VGG16; keys features.N.weight/bias, classifier.*)
    vgg.pth              (lpips/weights/v0.1/vgg.pth; keys lin0.model.1.weight ... lin4...)
"""
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.convert.pth import CheckpointError, load_state_dict
from resshift_jax.models.lpips import LPIPS, SLICES


def _expected_shapes() -> tuple:
    """({vgg key: torch shape}, {lin key: torch shape}) for LPIPS-VGG."""
    vgg, lin, cin = {}, {}, 3
    for i, convs in enumerate(SLICES):
        for index, cout in convs:
            vgg[f"features.{index}.weight"] = (cout, cin, 3, 3)
            vgg[f"features.{index}.bias"] = (cout,)
            cin = cout
        lin[f"lin{i}.model.1.weight"] = (1, cin, 1, 1)
    return vgg, lin


def lpips_params_from_torch(vgg_state_dict: dict, lin_state_dict: dict) -> dict:
    """Flax LPIPS params; every tensor used and shape-checked, VGG `classifier.*` ignored."""
    vgg_shapes, lin_shapes = _expected_shapes()
    problems = [f"{k} (missing)" if k not in sd else f"{k} {tuple(sd[k].shape)} != {shape}"
                for sd, shapes in ((vgg_state_dict, vgg_shapes), (lin_state_dict, lin_shapes))
                for k, shape in shapes.items()
                if k not in sd or tuple(sd[k].shape) != shape]
    unexpected = ([k for k in vgg_state_dict if k not in vgg_shapes and not k.startswith("classifier.")]
                  + [k for k in lin_state_dict if k not in lin_shapes])
    if problems or unexpected:
        raise ValueError(f"not LPIPS-VGG weights: {len(problems)} missing or mis-shaped "
                         f"{problems[:5]}, {len(unexpected)} unexpected {unexpected[:5]}")
    to_hwio = lambda w: np.asarray(w, np.float32).transpose(2, 3, 1, 0)  # noqa: E731
    vgg = {f"features_{index}": {"kernel": to_hwio(vgg_state_dict[f"features.{index}.weight"]),
                                 "bias": np.asarray(vgg_state_dict[f"features.{index}.bias"], np.float32)}
           for convs in SLICES for index, _ in convs}
    lins = {f"lin{i}": {"kernel": to_hwio(lin_state_dict[f"lin{i}.model.1.weight"])}
            for i in range(len(SLICES))}
    return {"vgg": vgg, **lins}


def load_lpips(vgg_path, lin_path, dtype=jnp.float32):
    """(LPIPS module, params) from the two user-supplied files; CheckpointError names the file."""
    vgg_sd, lin_sd = load_state_dict(vgg_path), load_state_dict(lin_path)
    try:
        params = lpips_params_from_torch(vgg_sd, lin_sd)
    except ValueError as e:
        raise CheckpointError(f"{vgg_path} / {lin_path}: {e}") from None
    return LPIPS(dtype=dtype), jax.tree.map(jnp.asarray, params)

