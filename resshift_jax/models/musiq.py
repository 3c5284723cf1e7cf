"""MUSIQ as pyiqa computes it (`musiq`: KonIQ-10k head), in Flax, with pyiqa's multi-scale
patching on the host.

pyiqa's `MUSIQ.forward` (eval): x -> 2x - 1; `get_multiscale_patches`: the image resized
(torch bicubic, aspect kept, longer side 224 and 384, sizes rounded) and at its own size,
each cut into 32x32 patches after TF-SAME zero padding, with a hashed 10x10 spatial index,
a scale index and a mask; the resized scales padded to ceil(L/32)^2 patches, the original
scale keeps all of them. Each patch goes through a weight-standardised ResNet root (7x7/2
conv, GroupNorm, 3x3/2 max pool, one bottleneck) to 8x8x256 features, flattened (h, w, c)
and embedded; a pre-LN transformer with a CLS token and masked attention (logits of masked
pairs set to -1e3) scores it. The host pads the original scale's patches to a bucket of
`SEQ_BUCKET` tokens with mask 0: masked keys weigh exp(-1e3) = 0, so the score is unchanged
and images of similar size share one compiled program. Names follow pyiqa's state dict.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.data.torch_resize import interpolate
from resshift_jax.models.torch_layers import GroupNorm, LayerNorm, Linear

PATCH, GRID, SCALES = 32, 10, (224, 384)
SEQ_BUCKET = 64


def _hash_index(count: int) -> np.ndarray:
    """torch F.interpolate(arange(GRID), count, mode='nearest'): floor(i * GRID / count)."""
    scale = np.float32(GRID) / np.float32(count)
    return np.minimum(np.floor(np.arange(count, dtype=np.float32) * scale), GRID - 1).astype(np.int64)


def _patches(x: np.ndarray, scale_id: int, max_len: int):
    """x (h, w, 3) -> (tokens (L, 3*32*32) in (c, kh, kw) order, spatial, scale, mask)."""
    h, w, _ = x.shape
    ch, cw = math.ceil(h / PATCH), math.ceil(w / PATCH)
    pad_h, pad_w = ch * PATCH - h, cw * PATCH - w
    x = np.pad(x, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    tokens = x.reshape(ch, PATCH, cw, PATCH, 3).transpose(0, 2, 4, 1, 3).reshape(ch * cw, -1)
    spatial = (_hash_index(ch)[:, None] * GRID + _hash_index(cw)[None, :]).reshape(-1)
    n = len(tokens) if max_len < 0 else max_len
    out = np.zeros((n, tokens.shape[1]), np.float32)
    keep = min(n, len(tokens))
    out[:keep] = tokens[:keep]
    pos, mask = np.zeros(n, np.int32), np.zeros(n, np.float32)
    pos[:keep], mask[:keep] = spatial[:keep], 1.0
    return out, pos, np.full(n, scale_id, np.int32) * (mask > 0), mask


def multiscale_patches(img: np.ndarray, bucket: int = SEQ_BUCKET) -> dict:
    """HWC float32 image in [0, 1] -> {"tokens", "spatial", "scale", "mask"} for MUSIQ."""
    x = (np.asarray(img, np.float32) - 0.5) * 2
    h, w, _ = x.shape
    parts = []
    for scale_id, longer in enumerate(sorted(SCALES)):
        ratio = longer / max(h, w)
        resized = interpolate(x, "bicubic", size=(round(h * ratio), round(w * ratio)))
        parts.append(_patches(resized, scale_id, math.ceil(longer / PATCH) ** 2))
    own = _patches(x, len(SCALES), -1)
    length = -(-len(own[0]) // bucket) * bucket
    own = tuple(np.concatenate([a, np.zeros((length - len(a),) + a.shape[1:], a.dtype)]) for a in own)
    parts.append(own)
    return {k: np.concatenate([p[i] for p in parts]) for i, k in
            enumerate(("tokens", "spatial", "scale", "mask"))}


def _same_pad(x, kernel: int, stride: int):
    """pyiqa's exact_padding_2d(mode='same'): TF SAME zero padding, the extra pixel after."""
    pads = []
    for n in x.shape[1:3]:
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads.append((total // 2, total - total // 2))
    return jnp.pad(x, ((0, 0), *pads, (0, 0)))


class StdConv(nn.Module):
    """Weight-standardised conv (unbiased std + 1e-5), TF SAME padding, no bias."""
    features: int
    kernel: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        w = self.param("weight", nn.initializers.zeros, (self.features, x.shape[-1]) + (self.kernel,) * 2)
        w = w - w.mean(axis=(1, 2, 3), keepdims=True)
        w = w / (jnp.std(w, axis=(1, 2, 3), ddof=1, keepdims=True) + 1e-5)
        return jax.lax.conv_general_dilated(_same_pad(x, self.kernel, self.stride), w,
                                            (self.stride,) * 2, "VALID",
                                            dimension_numbers=("NHWC", "OIHW", "NHWC"))


class Bottleneck(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        identity = GroupNorm(32, 1e-4, name="gn_proj")(StdConv(self.features, 1, name="conv_proj")(x))
        x = nn.relu(GroupNorm(32, 1e-4, name="gn1")(StdConv(width, 1, name="conv1")(x)))
        x = nn.relu(GroupNorm(32, 1e-4, name="gn2")(StdConv(width, 3, name="conv2")(x)))
        x = GroupNorm(32, 1e-4, name="gn3")(StdConv(self.features, 1, name="conv3")(x))
        return nn.relu(x + identity)


class MultiHeadAttention(nn.Module):
    heads: int

    @nn.compact
    def __call__(self, x, mask):
        d = x.shape[-1]
        q, k, v = (Linear(d, name=n)(x) for n in ("query", "key", "value"))
        split = lambda t: t.reshape(t.shape[:2] + (self.heads, d // self.heads))  # noqa: E731
        logits = jnp.einsum("bqhd,bkhd->bhqk", split(q), split(k)) * (d // self.heads) ** -0.5
        pair = (mask[:, None, :, None] * mask[:, None, None, :]) > 0
        probs = jax.nn.softmax(jnp.where(pair, logits, -1e3), axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", probs, split(v)).reshape(x.shape)
        return Linear(d, name="out")(out)


class Mlp(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, x):
        y = nn.gelu(Linear(self.hidden, name="fc1")(x), approximate=False)
        return Linear(x.shape[-1], name="fc2")(y)


class EncoderBlock(nn.Module):
    heads: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x, mask):
        x = x + MultiHeadAttention(self.heads, name="attention")(LayerNorm(1e-6, name="norm1")(x), mask)
        return x + Mlp(self.mlp_dim, name="mlp")(LayerNorm(1e-6, name="norm2")(x))


class Blocks(nn.Module):
    heads: int
    mlp_dim: int
    layers: int

    @nn.compact
    def __call__(self, x, mask):
        for i in range(self.layers):
            x = EncoderBlock(self.heads, self.mlp_dim, name=f"encoderblock_{i}")(x, mask)
        return x


class Embedding(nn.Module):
    """A learned table added by index (pyiqa's AddHashSpatialPositionEmbs / AddScaleEmbs)."""
    name_: str
    shape: tuple

    @nn.compact
    def __call__(self, x, index):
        table = self.param(self.name_, nn.initializers.zeros, self.shape)
        return x + table.reshape(self.shape[-2:])[index]


class Encoder(nn.Module):
    heads: int
    mlp_dim: int
    layers: int

    @nn.compact
    def __call__(self, x, spatial, scale, mask):
        d = x.shape[-1]
        x = Embedding("position_emb", (1, GRID * GRID, d), name="posembed_input")(x, spatial)
        x = Embedding("scale_emb", (len(SCALES) + 1, d), name="scaleembed_input")(x, scale)
        cls = self.param("cls", nn.initializers.zeros, (1, 1, d))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, d)), x], axis=1)
        mask = jnp.concatenate([jnp.ones((x.shape[0], 1), mask.dtype), mask], axis=1)
        x = Blocks(self.heads, self.mlp_dim, self.layers, name="transformer")(x, mask)
        return LayerNorm(1e-6, name="encoder_norm")(x)


class MUSIQ(nn.Module):
    """multiscale_patches batch -> (B,) MOS (one class: the score; several: expected class)."""
    hidden: int
    mlp_dim: int
    heads: int
    layers: int
    num_class: int = 1

    @nn.compact
    def __call__(self, tokens, spatial, scale, mask):
        b, n, _ = tokens.shape
        x = tokens.reshape(b * n, 3, PATCH, PATCH).transpose(0, 2, 3, 1)
        x = StdConv(64, 7, 2, name="conv_root")(x)
        x = nn.relu(GroupNorm(32, 1e-6, name="gn_root")(x))
        x = nn.max_pool(_same_pad(x, 3, 2), (3, 3), strides=(2, 2))
        x = Bottleneck(256, name="block1")(x)
        x = Linear(self.hidden, name="embedding")(x.reshape(b, n, -1))
        x = Encoder(self.heads, self.mlp_dim, self.layers, name="transformer_encoder")(
            x, spatial, scale, mask)
        if self.num_class > 1:
            dist = jax.nn.softmax(Linear(self.num_class, name="head_0")(x[:, 0]), axis=-1)
            return jnp.sum(dist * jnp.arange(1, self.num_class + 1), axis=-1)
        return Linear(1, name="head")(x[:, 0])[:, 0]
