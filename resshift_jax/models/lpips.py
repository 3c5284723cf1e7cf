"""LPIPS (VGG16 variant, v0.1) in Flax: the perceptual term of the journal training recipe.

Same computation as the `lpips` package's `LPIPS(net="vgg")`: inputs in [-1, 1] shifted
and scaled, VGG16 features at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each
unit-normalised over channels, squared differences weighted by learned 1x1 convs,
averaged over space and summed over layers. Weights come from the user's torchvision and
lpips files (see `convert/lpips.py`).
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any
# (torchvision `features` index, out channels) per conv, grouped by LPIPS slice
SLICES = (((0, 64), (2, 64)), ((5, 128), (7, 128)), ((10, 256), (12, 256), (14, 256)),
          ((17, 512), (19, 512), (21, 512)), ((24, 512), (26, 512), (28, 512)))
_SHIFT = jnp.array([-0.030, -0.088, -0.188])
_SCALE = jnp.array([0.458, 0.448, 0.450])


class VGG16Features(nn.Module):
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        feats = []
        for level, convs in enumerate(SLICES):
            if level:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for index, channels in convs:
                x = nn.relu(nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                                    param_dtype=self.param_dtype, name=f"features_{index}")(x))
            feats.append(x)
        return feats


def _unit(x, eps: float = 1e-10):
    return x / (jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + eps)


class LPIPS(nn.Module):
    """(x, y) NHWC in [-1, 1] -> (B,) perceptual distances."""
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, y):
        vgg = VGG16Features(self.dtype, self.param_dtype, name="vgg")
        scale = lambda v: ((v.astype(jnp.float32) - _SHIFT) / _SCALE).astype(self.dtype)  # noqa
        fx, fy = vgg(scale(x)), vgg(scale(y))
        total = 0.0
        for i, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit(a.astype(jnp.float32)) - _unit(b.astype(jnp.float32))) ** 2
            weighted = nn.Conv(1, (1, 1), use_bias=False, dtype=jnp.float32,
                               param_dtype=self.param_dtype, name=f"lin{i}")(diff)
            total = total + jnp.mean(weighted, axis=(1, 2, 3))
        return total
