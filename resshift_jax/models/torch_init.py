"""PyTorch's default initialisation applied to a Flax parameter tree.

A model trained from scratch should start where the reference's starts. torch.nn's conv and
linear layers draw their weight with kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in),
1/sqrt(fan_in)), and their bias from the same range; Flax's defaults (lecun_normal weights,
zero biases) have sqrt(3) times the weight spread. Norm scales and biases (1 and 0) and
other parameters (Swin's relative position table, truncated normal 0.02 in both) are kept.
"""
import math
from typing import Callable, Dict, List, Tuple

import jax
import jax.numpy as jnp
from flax import traverse_util

Path = Tuple[str, ...]
# (shape, dtype) -> [(leaf path, fold_in index, bound)]: the draws one vmapped call makes
DrawPlan = Dict[tuple, List[Tuple[Path, int, float]]]


def draw_plan(params, zeroed: Callable[[Path], bool] = lambda p: False) -> Tuple[DrawPlan, list]:
    """(the redrawn leaves grouped by shape and dtype; the zeroed leaves' paths) of a
    parameter tree (arrays or shapes). Leaf i of the sorted layers' (kernel, bias) is drawn
    from `fold_in(key, i)`, whatever its group."""
    flat = traverse_util.flatten_dict(params)
    layers = sorted({path[:-1] for path in flat if path[-1] == "kernel"})
    plan, zeros = {}, []
    for i, layer in enumerate(layers):
        bound = 1.0 / math.sqrt(math.prod(flat[layer + ("kernel",)].shape[:-1]))
        for j, name in enumerate(("kernel", "bias")):
            leaf = flat.get(layer + (name,))
            if leaf is None:
                continue
            if zeroed(layer):
                zeros.append(layer + (name,))
            else:
                plan.setdefault((tuple(leaf.shape), jnp.dtype(leaf.dtype)), []).append(
                    (layer + (name,), 2 * i + j, bound))
    return plan, zeros


def draw(plan: DrawPlan, key) -> list:
    """One stacked array of draws per group of `plan`: the same bits as one
    `uniform(fold_in(key, i), shape, minval=-bound, maxval=bound)` per leaf, with one unrolled
    threefry per group rather than two per leaf (a compiled init of the v3 UNet has ~500
    leaves, and each threefry adds ~0.1 s to a CPU compile)."""
    members = [m for group in plan.values() for m in group]
    keys = jax.vmap(lambda n: jax.random.fold_in(key, n))(
        jnp.array([n for _, n, _ in members], jnp.uint32))
    stacks, start = [], 0
    for (shape, dtype), group in plan.items():
        bounds = jnp.array([bound for _, _, bound in group], dtype)
        stacks.append(jax.vmap(lambda k, b: jax.random.uniform(k, shape, dtype, -b, b))(
            keys[start:start + len(group)], bounds))
        start += len(group)
    return stacks


def assemble(params, plan: DrawPlan, zeros: list, stacks, zeros_like=jnp.zeros_like):
    """`params` with the planned leaves taken from `stacks` (jax or numpy) and `zeros` zeroed."""
    out = traverse_util.flatten_dict(params)
    for members, stack in zip(plan.values(), stacks):
        out.update({path: stack[row] for row, (path, _, _) in enumerate(members)})
    out.update({path: zeros_like(out[path]) for path in zeros})
    return traverse_util.unflatten_dict(out)


def torch_default_init(params, key, zeroed: Callable[[Path], bool] = lambda p: False):
    """`params` with every layer holding a `kernel` redrawn as torch.nn draws it.

    A kernel's fan-in is the product of all its dimensions but the last (HWIO convs,
    (in, out) dense layers); its layer's `bias` shares the bound. Layers whose path
    `zeroed(path)` accepts are set to zero instead (the reference's `zero_module`).
    """
    plan, zeros = draw_plan(params, zeroed)
    return assemble(params, plan, zeros, draw(plan, key))
