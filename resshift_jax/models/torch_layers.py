"""Layers that keep PyTorch's parameter names and layouts (weight OIHW / (out, in), running
stats), so converting a state dict is a key map: `a.b.0.weight` -> params["a"]["b_0"]["weight"].
Inference only (batch norm uses its running statistics), NHWC activations.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_zeros = nn.initializers.zeros


class Conv2d(nn.Module):
    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    bias: bool = True

    @nn.compact
    def __call__(self, x):
        w = self.param("weight", _zeros, (self.features, x.shape[-1], self.kernel, self.kernel))
        p = self.padding
        y = jax.lax.conv_general_dilated(x, w, (self.stride, self.stride), ((p, p), (p, p)),
                                         dimension_numbers=("NHWC", "OIHW", "NHWC"))
        return y + self.param("bias", _zeros, (self.features,)) if self.bias else y


class Linear(nn.Module):
    features: int
    bias: bool = True

    @nn.compact
    def __call__(self, x):
        y = x @ self.param("weight", _zeros, (self.features, x.shape[-1])).T
        return y + self.param("bias", _zeros, (self.features,)) if self.bias else y


class BatchNorm2d(nn.Module):
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        mean, var = self.param("running_mean", _zeros, (c,)), self.param("running_var", _zeros, (c,))
        scale = self.param("weight", _zeros, (c,)) / jnp.sqrt(var + self.eps)
        return (x - mean) * scale + self.param("bias", _zeros, (c,))


class LayerNorm(nn.Module):
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x):
        mean = jnp.mean(x, -1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
        y = (x - mean) / jnp.sqrt(var + self.eps)
        c = x.shape[-1]
        return y * self.param("weight", _zeros, (c,)) + self.param("bias", _zeros, (c,))


class GroupNorm(nn.Module):
    groups: int
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        g = x.reshape(b, h, w, self.groups, c // self.groups)
        mean = jnp.mean(g, (1, 2, 4), keepdims=True)
        var = jnp.mean(jnp.square(g - mean), (1, 2, 4), keepdims=True)
        y = ((g - mean) / jnp.sqrt(var + self.eps)).reshape(b, h, w, c)
        return y * self.param("weight", _zeros, (c,)) + self.param("bias", _zeros, (c,))


def avg_pool(x, k: int):
    """torch AvgPool2d(k): k x k windows, stride k, floor (trailing rows/cols dropped)."""
    return nn.avg_pool(x, (k, k), strides=(k, k)) if k > 1 else x


def attention(q, k, v, heads: int, bias=None):
    """Multi-head scaled dot-product attention of (B, Lq, D) x (B, Lk, D); additive `bias`."""
    split = lambda t: t.reshape(t.shape[:2] + (heads, t.shape[-1] // heads))  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    if bias is not None:
        logits = logits + bias
    out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    return out.reshape(out.shape[:2] + (-1,))


def state_dict_to_params(state_dict: dict, drop: Sequence[str] = ()) -> dict:
    """{'a.b.0.weight': arr} -> {'a': {'b_0': {'weight': arr}}}; a numeric part joins its parent."""
    params: dict = {}
    for key, value in state_dict.items():
        if any(key.endswith(d) for d in drop):
            continue
        parts = []
        for part in key.split("."):
            if part.lstrip("-").isdigit() and parts:
                parts[-1] = f"{parts[-1]}_{part}"
            else:
                parts.append(part)
        node = params
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = jnp.asarray(value, jnp.float32)
    return params
