"""The Swin `BasicLayer` of the reference's UNet (window attention over NHWC features).

The window size and shift are fixed from the configured resolution of the level, as in
the reference; the shifted-window attention mask is computed (in numpy, at trace time)
for the actual input size, so inputs larger than the configured size work. The mask
reproduces the reference exactly, including its index quirk: it assigns the region labels
along the height axis only and reads them back transposed within each window.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.models.layers import Dense, GroupNorm32, conv

Dtype = Any


def relative_position_index(window: int) -> np.ndarray:
    """(w*w, w*w) index into the (2w-1)^2 relative position bias table."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    flat = coords.reshape(2, -1)
    rel = (flat[:, :, None] - flat[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def window_partition(x, window: int):
    """(B, H, W, C) -> (B * nW, window * window, C), windows row-major, tokens row-major."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows, window: int, h: int, w: int):
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.reshape(b, h // window, w // window, window, window, -1)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> np.ndarray:
    """(nW, w*w, w*w) additive mask (0 / -100), bit-identical to the reference's."""
    img_mask = np.zeros((1, 1, h, w), np.float32)  # the reference's (1, 1, H, W) layout
    slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in slices:
        for ws in slices:
            img_mask[:, hs, ws, :] = label  # indexes channel and height axes, as the reference
            label += 1
    windows = img_mask.reshape(1, 1, h // window, window, w // window, window)
    windows = windows.transpose(0, 2, 4, 3, 5, 1).reshape(-1, window, window, 1)
    windows = windows.transpose(0, 2, 3, 1).reshape(-1, window * window)
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


class WindowAttention(nn.Module):
    dim: int
    window: int
    num_heads: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask=None):
        bw, n, c = x.shape
        head = c // self.num_heads
        table = self.param("relative_position_bias_table", nn.initializers.truncated_normal(0.02),
                           ((2 * self.window - 1) ** 2, self.num_heads), self.param_dtype)
        qkv = Dense(3 * c, dtype=self.dtype, param_dtype=self.param_dtype, name="qkv")(x)
        qkv = qkv.reshape(bw, n, 3, self.num_heads, head).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # scores, bias, mask and softmax in float32 whatever the compute dtype
        attn = jnp.einsum("bhnd,bhmd->bhnm", q, k, preferred_element_type=jnp.float32)
        attn = attn * head ** -0.5
        bias = table[relative_position_index(self.window).reshape(-1)]
        bias = bias.reshape(n, n, -1).transpose(2, 0, 1)
        attn = attn + bias[None].astype(jnp.float32)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.reshape(bw, self.num_heads, n, n)
        attn = jax.nn.softmax(attn, axis=-1).astype(self.dtype)
        out = jnp.einsum("bhnm,bhmd->bhnd", attn, v).transpose(0, 2, 1, 3).reshape(bw, n, c)
        return Dense(c, dtype=self.dtype, param_dtype=self.param_dtype, name="proj")(out)


class SwinBlock(nn.Module):
    dim: int
    resolution: int
    num_heads: int
    window: int
    shift: int
    mlp_ratio: float
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        window, shift = self.window, self.shift
        if self.resolution <= window:
            window, shift = self.resolution, 0
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        b, h, w, c = x.shape
        shortcut = x
        y = GroupNorm32(**kw, name="norm1")(x)
        if shift:
            y = jnp.roll(y, (-shift, -shift), axis=(1, 2))
        mask = jnp.asarray(shifted_window_mask(h, w, window, shift)) if shift else None
        y = WindowAttention(self.dim, window, self.num_heads, **kw, name="attn")(
            window_partition(y, window), mask)
        y = window_reverse(y, window, h, w)
        if shift:
            y = jnp.roll(y, (shift, shift), axis=(1, 2))
        x = shortcut + y
        hidden = int(self.dim * self.mlp_ratio)
        y = GroupNorm32(**kw, name="norm2")(x)
        y = conv(hidden, 1, **kw, name="fc1")(y)
        y = nn.gelu(y, approximate=False)
        y = conv(self.dim, 1, **kw, name="fc2")(y)
        return x + y


class BasicLayer(nn.Module):
    """1x1 patch embed, `depth` blocks alternating plain and shifted windows, 1x1 unembed."""
    in_chans: int
    embed_dim: int
    num_heads: int
    window: int
    depth: int
    resolution: int
    mlp_ratio: float
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = conv(self.embed_dim, 1, **kw, name="patch_embed_proj")(x)
        for i in range(self.depth):
            x = SwinBlock(self.embed_dim, self.resolution, self.num_heads, self.window,
                          0 if i % 2 == 0 else self.window // 2, self.mlp_ratio, **kw,
                          name=f"blocks_{i}")(x)
        return conv(self.in_chans, 1, **kw, name="patch_unembed_proj")(x)
