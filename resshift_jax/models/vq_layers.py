"""The LDM encoder and decoder of ResShift's VQ autoencoder, NHWC.

GroupNorm(32, eps 1e-6) runs in float32; the downsampling conv pads only right and bottom
(as the reference); `padding_mode` in the configs is accepted and, as in the reference,
unused.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resshift_jax.models.layers import GroupNorm32, conv, upsample_nearest

Dtype = Any


def _norm(name, dtype, param_dtype):
    return GroupNorm32(epsilon=1e-6, dtype=dtype, param_dtype=param_dtype, name=name)


class ResnetBlock(nn.Module):
    out_channels: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.silu(_norm("norm1", **kw)(x))
        h = conv(self.out_channels, 3, padding=1, **kw, name="conv1")(h)
        h = nn.silu(_norm("norm2", **kw)(h))
        h = conv(self.out_channels, 3, padding=1, **kw, name="conv2")(h)
        if x.shape[-1] != self.out_channels:
            x = conv(self.out_channels, 1, **kw, name="nin_shortcut")(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, 1x1 conv projections."""
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        b, h, w, c = x.shape
        y = _norm("norm", **kw)(x)
        q, k, v = (conv(c, 1, **kw, name=n)(y).reshape(b, h * w, c) for n in ("q", "k", "v"))
        weights = jnp.einsum("bic,bjc->bij", q, k) * (int(c) ** -0.5)
        weights = jax.nn.softmax(weights.astype(jnp.float32), axis=-1).astype(self.dtype)
        y = jnp.einsum("bij,bjc->bic", weights, v).reshape(b, h, w, c)
        return x + conv(c, 1, **kw, name="proj_out")(y)


def _blocks(num_res_blocks, levels: int) -> Sequence[int]:
    return [num_res_blocks] * levels if isinstance(num_res_blocks, int) else list(num_res_blocks)


class Encoder(nn.Module):
    ch: int
    ch_mult: Sequence[int]
    num_res_blocks: Any
    attn_resolutions: Sequence[int]
    resolution: int
    z_channels: int
    double_z: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        blocks = _blocks(self.num_res_blocks, len(self.ch_mult))
        h = conv(self.ch, 3, padding=1, **kw, name="conv_in")(x.astype(self.dtype))
        res = self.resolution
        for level, mult in enumerate(self.ch_mult):
            for i in range(blocks[level]):
                h = ResnetBlock(self.ch * mult, **kw, name=f"down_{level}_block_{i}")(h)
                if res in self.attn_resolutions:
                    h = AttnBlock(**kw, name=f"down_{level}_attn_{i}")(h)
            if level != len(self.ch_mult) - 1:
                h = jnp.pad(h, ((0, 0), (0, 1), (0, 1), (0, 0)))
                h = conv(h.shape[-1], 3, stride=2, **kw, name=f"down_{level}_downsample_conv")(h)
                res //= 2
        h = ResnetBlock(h.shape[-1], **kw, name="mid_block_1")(h)
        h = AttnBlock(**kw, name="mid_attn_1")(h)
        h = ResnetBlock(h.shape[-1], **kw, name="mid_block_2")(h)
        h = nn.silu(_norm("norm_out", **kw)(h))
        out = 2 * self.z_channels if self.double_z else self.z_channels
        return conv(out, 3, padding=1, **kw, name="conv_out")(h)


class Decoder(nn.Module):
    ch: int
    out_ch: int
    ch_mult: Sequence[int]
    num_res_blocks: Any
    attn_resolutions: Sequence[int]
    resolution: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        levels = len(self.ch_mult)
        blocks = _blocks(self.num_res_blocks, levels)
        block_in = self.ch * self.ch_mult[-1]
        res = self.resolution // 2 ** (levels - 1)
        h = conv(block_in, 3, padding=1, **kw, name="conv_in")(z.astype(self.dtype))
        h = ResnetBlock(block_in, **kw, name="mid_block_1")(h)
        h = AttnBlock(**kw, name="mid_attn_1")(h)
        h = ResnetBlock(block_in, **kw, name="mid_block_2")(h)
        for level in reversed(range(levels)):
            for i in range(blocks[level] + 1):
                h = ResnetBlock(self.ch * self.ch_mult[level], **kw, name=f"up_{level}_block_{i}")(h)
                if res in self.attn_resolutions:
                    h = AttnBlock(**kw, name=f"up_{level}_attn_{i}")(h)
            if level != 0:
                h = conv(h.shape[-1], 3, padding=1, **kw, name=f"up_{level}_upsample_conv")(
                    upsample_nearest(h))
                res *= 2
        h = nn.silu(_norm("norm_out", **kw)(h))
        return conv(self.out_ch, 3, padding=1, **kw, name="conv_out")(h)
