"""PyTorch's default initialisation applied to a Flax parameter tree.

A model trained from scratch should start where the reference's starts. torch.nn's conv and
linear layers draw their weight with kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in),
1/sqrt(fan_in)), and their bias from the same range; Flax's defaults (lecun_normal weights,
zero biases) have sqrt(3) times the weight spread. Norm scales and biases (1 and 0) and
other parameters (Swin's relative position table, truncated normal 0.02 in both) are kept.
"""
import math
from typing import Callable, Tuple

import jax
import jax.numpy as jnp
from flax import traverse_util


def torch_default_init(params, key, zeroed: Callable[[Tuple[str, ...]], bool] = lambda p: False):
    """`params` with every layer holding a `kernel` redrawn as torch.nn draws it.

    A kernel's fan-in is the product of all its dimensions but the last (HWIO convs,
    (in, out) dense layers); its layer's `bias` shares the bound. Layers whose path
    `zeroed(path)` accepts are set to zero instead (the reference's `zero_module`).
    """
    flat = traverse_util.flatten_dict(params)
    layers = sorted({path[:-1] for path in flat if path[-1] == "kernel"})
    out = dict(flat)
    for i, layer in enumerate(layers):
        bound = 1.0 / math.sqrt(math.prod(flat[layer + ("kernel",)].shape[:-1]))
        for j, name in enumerate(("kernel", "bias")):
            leaf = flat.get(layer + (name,))
            if leaf is None:
                continue
            out[layer + (name,)] = (
                jnp.zeros_like(leaf) if zeroed(layer) else
                jax.random.uniform(jax.random.fold_in(key, 2 * i + j), leaf.shape, leaf.dtype,
                                   -bound, bound))
    return traverse_util.unflatten_dict(out)
