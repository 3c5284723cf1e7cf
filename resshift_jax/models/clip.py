"""CLIP-IQA as pyiqa computes it (`clipiqa`: CLIP RN50, no positional embedding, 5 antonym
prompt pairs), in Flax.

pyiqa's `CLIPIQA.forward`: normalise with OpenAI's CLIP mean/std, encode the image at its own
size with CLIP's ModifiedResNet (3-conv stem, anti-aliased bottlenecks, attention pooling
whose positional embedding pyiqa leaves out, so any size works), encode the 10 prompts with
CLIP's text transformer, cosine logits scaled by exp(logit_scale), softmax within each
(positive, negative) pair, and the mean positive probability over the pairs. The prompts'
features do not depend on the image: `text_features` computes them once. Parameter names are
the `clip` state dict's (`visual.layer1.0.conv1.weight` -> visual/layer1_0/conv1/weight).
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.models.torch_layers import BatchNorm2d, Conv2d, LayerNorm, Linear, attention, avg_pool

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# clip.tokenize of pyiqa's prompts ('Good image', 'bad image', 'Sharp image', 'blurry image',
# 'sharp edges', 'blurry edges', 'High resolution image', 'low resolution image',
# 'Noise-free image', 'noisy image'); tools/make_pyiqa_fixtures.py records and checks them
PROMPT_TOKENS = ((49406, 886, 2867, 49407), (49406, 2103, 2867, 49407),
                 (49406, 8157, 2867, 49407), (49406, 21977, 2867, 49407),
                 (49406, 8157, 20938, 49407), (49406, 21977, 20938, 49407),
                 (49406, 1400, 9977, 2867, 49407), (49406, 1042, 9977, 2867, 49407),
                 (49406, 9307, 268, 1139, 2867, 49407), (49406, 33495, 2867, 49407))


def prompt_tokens(context_length: int = 77) -> np.ndarray:
    out = np.zeros((len(PROMPT_TOKENS), context_length), np.int32)
    for i, ids in enumerate(PROMPT_TOKENS):
        out[i, :len(ids)] = ids
    return out


class Bottleneck(nn.Module):
    planes: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        out = nn.relu(BatchNorm2d(name="bn1")(Conv2d(self.planes, 1, bias=False, name="conv1")(x)))
        out = nn.relu(BatchNorm2d(name="bn2")(
            Conv2d(self.planes, 3, padding=1, bias=False, name="conv2")(out)))
        out = avg_pool(out, self.stride)
        out = BatchNorm2d(name="bn3")(Conv2d(self.planes * 4, 1, bias=False, name="conv3")(out))
        if self.stride > 1 or x.shape[-1] != self.planes * 4:
            x = avg_pool(x, self.stride)
            x = BatchNorm2d(name="downsample_1")(
                Conv2d(self.planes * 4, 1, bias=False, name="downsample_0")(x))
        return nn.relu(out + x)


class ModifiedResNet(nn.Module):
    """CLIP's image tower: (B, H, W, 3) normalised -> (B, embed_dim), attention-pooled."""
    layers: Sequence[int]
    width: int
    output_dim: int

    @nn.compact
    def __call__(self, x):
        for i, (cout, stride) in enumerate(((self.width // 2, 2), (self.width // 2, 1),
                                            (self.width, 1)), start=1):
            x = Conv2d(cout, 3, stride, 1, bias=False, name=f"conv{i}")(x)
            x = nn.relu(BatchNorm2d(name=f"bn{i}")(x))
        x = avg_pool(x, 2)
        for i, blocks in enumerate(self.layers):
            for j in range(blocks):
                x = Bottleneck(self.width * 2 ** i, 2 if (i and not j) else 1,
                               name=f"layer{i + 1}_{j}")(x)
        return AttentionPool(self.width * 32 // 64, self.output_dim, name="attnpool")(x)


class AttentionPool(nn.Module):
    """Attention pooling with the mean token as the only query (pyiqa: no positional embedding)."""
    heads: int
    output_dim: int

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        tokens = x.reshape(b, h * w, c)
        tokens = jnp.concatenate([tokens.mean(axis=1, keepdims=True), tokens], axis=1)
        q = Linear(c, name="q_proj")(tokens[:, :1])
        k, v = Linear(c, name="k_proj")(tokens), Linear(c, name="v_proj")(tokens)
        return Linear(self.output_dim, name="c_proj")(attention(q, k, v, self.heads))[:, 0]


class MultiheadAttention(nn.Module):
    """torch.nn.MultiheadAttention (packed in_proj, out_proj), batch-first, self-attention."""
    heads: int

    @nn.compact
    def __call__(self, x, bias=None):
        d = x.shape[-1]
        w = self.param("in_proj_weight", nn.initializers.zeros, (3 * d, d))
        b = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,))
        q, k, v = jnp.split(x @ w.T + b, 3, axis=-1)
        return Linear(d, name="out_proj")(attention(q, k, v, self.heads, bias))


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        y = Linear(4 * x.shape[-1], name="c_fc")(x)
        return Linear(x.shape[-1], name="c_proj")(y * jax.nn.sigmoid(1.702 * y))  # QuickGELU


class ResidualAttentionBlock(nn.Module):
    heads: int

    @nn.compact
    def __call__(self, x, bias):
        x = x + MultiheadAttention(self.heads, name="attn")(LayerNorm(name="ln_1")(x), bias)
        return x + MLP(name="mlp")(LayerNorm(name="ln_2")(x))


class Transformer(nn.Module):
    layers: int
    heads: int

    @nn.compact
    def __call__(self, x, bias):
        for i in range(self.layers):
            x = ResidualAttentionBlock(self.heads, name=f"resblocks_{i}")(x, bias)
        return x


class TextEncoder(nn.Module):
    """CLIP's text tower: (N, 77) token ids -> (N, embed_dim) at each sequence's EOT token."""
    vocab_size: int
    context_length: int
    width: int
    layers: int
    embed_dim: int

    @nn.compact
    def __call__(self, tokens):
        table = self.param("token_embedding", nn.initializers.zeros, (self.vocab_size, self.width))
        pos = self.param("positional_embedding", nn.initializers.zeros,
                         (self.context_length, self.width))
        causal = jnp.triu(jnp.full((self.context_length,) * 2, -jnp.inf), 1)
        x = Transformer(self.layers, self.width // 64, name="transformer")(table[tokens] + pos, causal)
        x = LayerNorm(name="ln_final")(x)
        eot = x[jnp.arange(x.shape[0]), jnp.argmax(tokens, axis=-1)]
        return eot @ self.param("text_projection", nn.initializers.zeros,
                                (self.width, self.embed_dim))


class CLIPIQA(nn.Module):
    """(B, H, W, 3) in [0, 1] -> (B,) pyiqa `clipiqa` scores, given the prompts' features."""
    layers: Sequence[int]
    width: int
    embed_dim: int

    @nn.compact
    def __call__(self, x):
        x = (x - jnp.asarray(CLIP_MEAN)) / jnp.asarray(CLIP_STD)
        image = ModifiedResNet(tuple(self.layers), self.width, self.embed_dim, name="visual")(x)
        text = self.param("text_features", nn.initializers.zeros, (len(PROMPT_TOKENS), self.embed_dim))
        logit_scale = self.param("logit_scale", nn.initializers.zeros, ())
        image = image / jnp.linalg.norm(image, axis=-1, keepdims=True)
        text = text / jnp.linalg.norm(text, axis=-1, keepdims=True)
        logits = jnp.exp(logit_scale) * image @ text.T
        probs = jax.nn.softmax(logits.reshape(x.shape[0], -1, 2), axis=-1)
        return probs[..., 0].mean(axis=1)
