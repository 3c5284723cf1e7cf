"""Building blocks shared by the UNet and the autoencoder, NHWC.

Submodule names follow the PyTorch reference's module paths with `.` written as `_`
(`in_layers.2` -> `in_layers_2`), so the converter maps names mechanically.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any


class GroupNorm32(nn.Module):
    """GroupNorm computed in float32 (as the reference's GroupNorm32), cast back to `dtype`."""
    num_groups: int = 32
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = nn.GroupNorm(num_groups=self.num_groups, epsilon=self.epsilon, dtype=jnp.float32,
                         param_dtype=self.param_dtype, use_fast_variance=False,
                         name="norm")(x.astype(jnp.float32))
        return y.astype(self.dtype)


def conv(features: int, kernel: int, *, stride: int = 1, padding: int = 0, dtype, param_dtype,
         name: str, use_bias: bool = True):
    """A 2-D convolution with torch's explicit symmetric zero padding."""
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((padding, padding), (padding, padding)), use_bias=use_bias,
                   dtype=dtype, param_dtype=param_dtype, name=name)


def upsample_nearest(x, factor: int = 2):
    """torch's F.interpolate(scale_factor=2, mode='nearest') in NHWC."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
