"""The LDM encoder and decoder of ResShift's VQ autoencoder, NHWC.

GroupNorm(32, eps 1e-6) runs in float32, and so do the convs at the 3-channel ends
(`conv_in`, `conv_out`): images and latents cross in full precision whatever the compute
dtype, for under 0.2% of the FLOPs. The downsampling conv pads only right and bottom,
with zeros, as the reference does. `padding_mode` applies to every 3x3 stride-1 conv
(torch's `Conv2d(padding_mode=...)` semantics, as in the reference's `model_back.py`);
the reference's active `model.py` ignores it and every released config says 'zeros', so
`VQModel` accepts only 'zeros' (the layers keep the option for other models).
"""
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from resshift_jax.models.attention import attention
from resshift_jax.models.layers import GroupNorm32, UpsampleConv, conv, upsample_nearest

Dtype = Any

# torch Conv2d padding_mode -> jnp.pad mode
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _norm(name, dtype, param_dtype):
    return GroupNorm32(epsilon=1e-6, dtype=dtype, param_dtype=param_dtype, name=name)


def conv3x3(x, features: int, padding_mode: str, *, dtype, param_dtype, name: str):
    """3x3 stride-1 conv with one pixel of `padding_mode` padding on every side."""
    if padding_mode not in PAD_MODES:
        raise ValueError(f"padding_mode {padding_mode!r} not one of {sorted(PAD_MODES)}")
    if padding_mode == "zeros":
        return conv(features, 3, padding=1, dtype=dtype, param_dtype=param_dtype, name=name)(x)
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=PAD_MODES[padding_mode])
    return conv(features, 3, dtype=dtype, param_dtype=param_dtype, name=name)(x)


class ResnetBlock(nn.Module):
    out_channels: int
    padding_mode: str = "zeros"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.silu(_norm("norm1", **kw)(x))
        h = conv3x3(h, self.out_channels, self.padding_mode, **kw, name="conv1")
        h = nn.silu(_norm("norm2", **kw)(h))
        h = conv3x3(h, self.out_channels, self.padding_mode, **kw, name="conv2")
        if x.shape[-1] != self.out_channels:
            x = conv(self.out_channels, 1, **kw, name="nin_shortcut")(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, 1x1 conv projections.

    `attn_budget`: bytes of float32 scores per block (models/attention.py); None: the
    compiling platform's.
    """
    attn_budget: Optional[int] = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        b, h, w, c = x.shape
        y = _norm("norm", **kw)(x)
        q, k, v = (conv(c, 1, **kw, name=n)(y).reshape(b, h * w, c) for n in ("q", "k", "v"))
        y = attention(q, k, v, self.dtype, self.attn_budget).reshape(b, h, w, c)
        return x + conv(c, 1, **kw, name="proj_out")(y)


class Downsample(nn.Module):
    """Zero-pad right and bottom by one, then a 3x3 stride-2 conv: H, W -> H/2, W/2."""
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
        return conv(x.shape[-1], 3, stride=2, dtype=self.dtype, param_dtype=self.param_dtype,
                    name="conv")(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv (fused into one sub-pixel conv for zero padding)."""
    padding_mode: str = "zeros"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        if self.padding_mode == "zeros":
            return UpsampleConv(x.shape[-1], dtype=self.dtype, param_dtype=self.param_dtype,
                                name="conv")(x)
        return conv3x3(upsample_nearest(x), x.shape[-1], self.padding_mode, dtype=self.dtype,
                       param_dtype=self.param_dtype, name="conv")


def _blocks(num_res_blocks, levels: int) -> Sequence[int]:
    if isinstance(num_res_blocks, int):
        return [num_res_blocks] * levels
    if len(num_res_blocks) != levels:
        raise ValueError(f"num_res_blocks {num_res_blocks} needs one entry per ch_mult level")
    return list(num_res_blocks)


class Encoder(nn.Module):
    ch: int
    ch_mult: Sequence[int]
    num_res_blocks: Any
    attn_resolutions: Sequence[int]
    resolution: int
    z_channels: int
    double_z: bool = False
    padding_mode: str = "zeros"
    attn_budget: Optional[int] = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        pm = self.padding_mode
        blocks = _blocks(self.num_res_blocks, len(self.ch_mult))
        f32 = dict(dtype=jnp.float32, param_dtype=self.param_dtype)
        h = conv3x3(x.astype(jnp.float32), self.ch, pm, **f32, name="conv_in").astype(self.dtype)
        res = self.resolution
        for level, mult in enumerate(self.ch_mult):
            for i in range(blocks[level]):
                h = ResnetBlock(self.ch * mult, pm, **kw, name=f"down_{level}_block_{i}")(h)
                if res in self.attn_resolutions:
                    h = AttnBlock(self.attn_budget, **kw, name=f"down_{level}_attn_{i}")(h)
            if level != len(self.ch_mult) - 1:
                h = Downsample(**kw, name=f"down_{level}_downsample")(h)
                res //= 2
        h = ResnetBlock(h.shape[-1], pm, **kw, name="mid_block_1")(h)
        h = AttnBlock(self.attn_budget, **kw, name="mid_attn_1")(h)
        h = ResnetBlock(h.shape[-1], pm, **kw, name="mid_block_2")(h)
        h = nn.silu(_norm("norm_out", **kw)(h))
        out = 2 * self.z_channels if self.double_z else self.z_channels
        return conv3x3(h, out, pm, **f32, name="conv_out")


class Decoder(nn.Module):
    ch: int
    out_ch: int
    ch_mult: Sequence[int]
    num_res_blocks: Any
    attn_resolutions: Sequence[int]
    resolution: int
    padding_mode: str = "zeros"
    attn_budget: Optional[int] = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        pm = self.padding_mode
        levels = len(self.ch_mult)
        blocks = _blocks(self.num_res_blocks, levels)
        block_in = self.ch * self.ch_mult[-1]
        res = self.resolution // 2 ** (levels - 1)
        f32 = dict(dtype=jnp.float32, param_dtype=self.param_dtype)
        h = conv3x3(z.astype(jnp.float32), block_in, pm, **f32, name="conv_in").astype(self.dtype)
        h = ResnetBlock(block_in, pm, **kw, name="mid_block_1")(h)
        h = AttnBlock(self.attn_budget, **kw, name="mid_attn_1")(h)
        h = ResnetBlock(block_in, pm, **kw, name="mid_block_2")(h)
        for level in reversed(range(levels)):
            for i in range(blocks[level] + 1):
                h = ResnetBlock(self.ch * self.ch_mult[level], pm, **kw,
                                name=f"up_{level}_block_{i}")(h)
                if res in self.attn_resolutions:
                    h = AttnBlock(self.attn_budget, **kw, name=f"up_{level}_attn_{i}")(h)
            if level != 0:
                h = Upsample(pm, **kw, name=f"up_{level}_upsample")(h)
                res *= 2
        h = nn.silu(_norm("norm_out", **kw)(h))
        return conv3x3(h, self.out_ch, pm, **f32, name="conv_out")
