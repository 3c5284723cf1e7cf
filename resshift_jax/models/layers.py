"""Building blocks shared by the UNet and the autoencoder, NHWC.

Submodule names follow the PyTorch reference's module paths with `.` written as `_`
(`in_layers.2` -> `in_layers_2`), so the converter maps names mechanically.
"""
from typing import Any

import flax.linen as nn
import jax
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


def broadcast_then_cast(t, shape, dtype):
    """`t` broadcast to `shape` in float32, then cast to `dtype`: the values of casting first,
    but the gradient, a sum over the broadcast axes, then accumulates in float32. A bf16 sum
    stops growing once its total dwarfs the terms (XLA:CPU: 65,536 terms of 0.01 sum to 16,
    not 655), which would corrupt every bias gradient of a bf16 training step."""
    return jnp.broadcast_to(t.astype(jnp.float32), shape).astype(dtype)


def add_bias(y, bias):
    """y + bias over the last axis, its gradient summed in float32 (`broadcast_then_cast`)."""
    return y + broadcast_then_cast(bias, y.shape, y.dtype)


class PointwiseConv(nn.Module):
    """A 1x1 conv as one matrix product over channels (2x faster than XLA:CPU's 1x1 conv).

    Parameters are `nn.Conv`'s: `kernel` (1, 1, Cin, Cout) and `bias`.
    """
    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (1, 1, x.shape[-1], self.features), self.param_dtype)
        y = jnp.dot(x.astype(self.dtype), kernel[0, 0].astype(self.dtype))
        if self.use_bias:
            y = add_bias(y, self.param("bias", nn.initializers.zeros_init(), (self.features,),
                                       self.param_dtype))
        return y


class Dense(nn.Module):
    """`nn.Dense` (same parameters and initialisers) whose bias gradient sums in float32."""
    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), self.param_dtype)
        return add_bias(jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype)), bias)


class Conv(nn.Module):
    """`nn.Conv` with explicit padding (same parameters and initialisers), NHWC, whose bias
    gradient sums in float32."""
    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k, p = self.kernel_size, self.padding
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (k, k, x.shape[-1], self.features), self.param_dtype)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), kernel.astype(self.dtype), (self.stride, self.stride),
            ((p, p), (p, p)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            y = add_bias(y, self.param("bias", nn.initializers.zeros_init(), (self.features,),
                                       self.param_dtype))
        return y


def conv(features: int, kernel: int, *, stride: int = 1, padding: int = 0, dtype, param_dtype,
         name: str, use_bias: bool = True):
    """A 2-D convolution with torch's explicit symmetric zero padding."""
    if kernel == 1 and stride == 1 and padding == 0:
        return PointwiseConv(features, use_bias, dtype=dtype, param_dtype=param_dtype, name=name)
    return Conv(features, kernel, stride, padding, use_bias, dtype=dtype,
                param_dtype=param_dtype, name=name)


def upsample_nearest(x, factor: int = 2):
    """torch's F.interpolate(scale_factor=2, mode='nearest') in NHWC."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _fold_taps(w, axis: int):
    """3 taps along `axis` -> (parity, 2 taps): even outputs of a nearest-x2 upsampled input
    see low-res positions (i-1, i) through (w0, w1+w2), odd ones (i, i+1) through (w0+w1, w2)."""
    w0, w1, w2 = (jnp.take(w, i, axis=axis) for i in range(3))
    return jnp.stack([jnp.stack([w0, w1 + w2], axis), jnp.stack([w0 + w1, w2], axis)])


class UpsampleConv(nn.Module):
    """Nearest x2 upsampling then a 3x3 zero-padded conv, computed without upsampling.

    Every output pixel of parity (a, b) sees a 2x2 neighbourhood of the input through summed
    3x3 taps, so the pair is one 2x2 conv with 4x the output channels on the input padded by
    one, then a pixel shuffle: 2.25x fewer FLOPs than the conv on the upsampled image, and a
    cheap backward. Below `min_positions` input pixels the folded kernel costs more than it
    saves, and the plain composition runs. Same parameters (`kernel` (3, 3, Cin, Cout),
    `bias`) as `nn.Conv` either way; results equal `conv(upsample_nearest(x))` up to rounding.
    """
    features: int
    min_positions: int = 16 * 16
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, cin = x.shape
        cout = self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, cin, cout),
                            self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros_init(), (cout,), self.param_dtype)
        if h * w < self.min_positions:
            y = jax.lax.conv_general_dilated(
                upsample_nearest(x).astype(self.dtype), kernel.astype(self.dtype), (1, 1),
                ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return add_bias(y, bias)
        sub = _fold_taps(_fold_taps(kernel, 0), 2)  # (b, a, u, v, cin, cout)
        sub = sub.transpose(2, 3, 4, 1, 0, 5).reshape(2, 2, cin, 4 * cout)
        padded = jnp.pad(x.astype(self.dtype), ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = jax.lax.conv_general_dilated(  # explicit pad: XLA:CPU's backward is 2.6x faster
            padded, sub.astype(self.dtype), (1, 1), "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        out = out.reshape(b, h + 1, w + 1, 2, 2, cout)
        rows = [jnp.stack([out[:, a:a + h, c:c + w, a, c] for c in (0, 1)], axis=3)
                for a in (0, 1)]
        y = jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, cout)
        return add_bias(y, bias)
