"""LPIPS (v0.1) in Flax, on VGG16 or AlexNet features: the perceptual loss and metric.

Same computation as the `lpips` package's `LPIPS(net=...)` and pyiqa's `lpips` (AlexNet, the
default, which the papers' tables use) / `lpips-vgg`: inputs in [-1, 1] shifted and scaled,
the trunk's ReLU outputs per slice (VGG16: relu1_2 ... relu5_3; AlexNet: relu1 ... relu5),
each unit-normalised over channels, squared differences weighted by learned 1x1 convs,
averaged over space and summed over layers. Weights come from the user's files (see
`convert/lpips.py`). Submodules are named after torchvision's `features.N` indices.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any
# (torchvision `features` index, out channels) per conv, grouped by LPIPS slice
SLICES = (((0, 64), (2, 64)), ((5, 128), (7, 128)), ((10, 256), (12, 256), (14, 256)),
          ((17, 512), (19, 512), (21, 512)), ((24, 512), (26, 512), (28, 512)))
# AlexNet: one conv per slice, (features index, out channels, kernel, stride, padding);
# a 3x3 stride-2 max pool precedes slices 2 and 3
ALEX_SLICES = ((0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1), (8, 256, 3, 1, 1),
               (10, 256, 3, 1, 1))
# the smallest side at which every layer has an output position (VGG: 4 2x2 pools; AlexNet:
# the stride-4 11x11 conv and 2 3x3/2 pools)
MIN_SIZE = {"vgg": 16, "alex": 31}
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


class AlexNetFeatures(nn.Module):
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        feats = []
        for level, (index, channels, k, s, p) in enumerate(ALEX_SLICES):
            if level in (1, 2):
                x = nn.max_pool(x, (3, 3), strides=(2, 2))
            x = nn.relu(nn.Conv(channels, (k, k), strides=(s, s), padding=((p, p), (p, p)),
                                dtype=self.dtype, param_dtype=self.param_dtype,
                                name=f"features_{index}")(x))
            feats.append(x)
        return feats


def _unit(x, eps: float = 1e-10):
    return x / (jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + eps)


class LPIPS(nn.Module):
    """(x, y) NHWC in [-1, 1] -> (B,) perceptual distances; `net` is "vgg" or "alex"."""
    net: str = "vgg"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, y):
        trunk = {"vgg": VGG16Features, "alex": AlexNetFeatures}[self.net]
        features = trunk(self.dtype, self.param_dtype, name=self.net)
        scale = lambda v: ((v.astype(jnp.float32) - _SHIFT) / _SCALE).astype(self.dtype)  # noqa
        fx, fy = features(scale(x)), features(scale(y))
        total = 0.0
        for i, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit(a.astype(jnp.float32)) - _unit(b.astype(jnp.float32))) ** 2
            weighted = nn.Conv(1, (1, 1), use_bias=False, dtype=jnp.float32,
                               param_dtype=self.param_dtype, name=f"lin{i}")(diff)
            total = total + jnp.mean(weighted, axis=(1, 2, 3))
        return total
