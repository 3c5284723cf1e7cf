"""ResShift's `UNetModelSwin` in Flax, NHWC: ResBlocks with scale-shift norm, Swin layers.

Fields are the reference constructor's keyword arguments (as in the released configs), so
`UNetModelSwin(**config.model)` builds any released architecture. GroupNorms run in
float32 whatever the compute `dtype`, and so do the timestep embedding MLPs (per-example
vectors) and the first and last convs (the 3-channel latent ends, <0.1% of the FLOPs);
parameters are `param_dtype` (float32).
"""
import math
from typing import Any, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from resshift_jax.models import torch_init
from resshift_jax.models.layers import GroupNorm32, UpsampleConv, broadcast_then_cast, conv
from resshift_jax.models.swin import BasicLayer

Dtype = Any


def timestep_embedding(timesteps, dim: int, max_period: float = 10000.0):
    """Sinusoidal embedding [cos, sin] of (possibly fractional) timesteps, float32."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(timesteps, jnp.float32)[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.concatenate([emb, jnp.zeros_like(emb[:, :1])], axis=-1)
    return emb


class ResBlock(nn.Module):
    out_channels: int
    use_scale_shift_norm: bool
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, emb):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.silu(GroupNorm32(**kw, name="in_layers_0")(x))
        h = conv(self.out_channels, 3, padding=1, **kw, name="in_layers_2")(h)
        emb_out = nn.Dense(2 * self.out_channels if self.use_scale_shift_norm else self.out_channels,
                           dtype=jnp.float32, param_dtype=self.param_dtype,
                           name="emb_layers_1")(nn.silu(emb))[:, None, None, :]
        if self.use_scale_shift_norm:
            scale, shift = (broadcast_then_cast(e, h.shape, h.dtype)
                            for e in jnp.split(emb_out, 2, axis=-1))
            h = GroupNorm32(**kw, name="out_layers_0")(h) * (1 + scale) + shift
        else:
            h = GroupNorm32(**kw, name="out_layers_0")(
                h + broadcast_then_cast(emb_out, h.shape, h.dtype))
        h = conv(self.out_channels, 3, padding=1, **kw, name="out_layers_3")(nn.silu(h))
        if x.shape[-1] != self.out_channels:
            x = conv(self.out_channels, 1, **kw, name="skip_connection")(x)
        return x + h


class UNetModelSwin(nn.Module):
    """noise-level-conditioned UNet: (x_t, t, lq[, mask]) -> x0 (or eps / residual)."""
    image_size: int
    in_channels: int
    model_channels: int
    out_channels: int
    num_res_blocks: Union[int, Sequence[int]]
    attention_resolutions: Sequence[int]
    dropout: float = 0.0
    channel_mult: Sequence[int] = (1, 2, 4, 8)
    conv_resample: bool = True
    dims: int = 2
    use_fp16: bool = False  # the reference's switch; here `dtype` decides
    num_heads: int = 1
    num_head_channels: int = -1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    swin_depth: int = 2
    swin_embed_dim: int = 96
    window_size: int = 8
    mlp_ratio: float = 2.0
    patch_norm: bool = False
    cond_lq: bool = True
    cond_mask: bool = False
    lq_size: int = 256
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def _check(self):
        if self.dims != 2 or self.resblock_updown or self.patch_norm or not self.conv_resample:
            raise NotImplementedError("only the released options are supported: dims=2, "
                                      "conv_resample, no resblock_updown, no patch_norm")

    def _swin(self, ch: int, resolution: int, name: str):
        heads = (self.num_heads if self.num_head_channels == -1
                 else self.swin_embed_dim // self.num_head_channels)
        return BasicLayer(ch, self.swin_embed_dim, heads, self.window_size, self.swin_depth,
                          resolution, self.mlp_ratio, dtype=self.dtype,
                          param_dtype=self.param_dtype, name=name)

    @nn.compact
    def __call__(self, x, timesteps, lq=None, mask=None):
        self._check()
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        blocks = self.num_res_blocks
        if isinstance(blocks, int):
            blocks = [blocks] * len(self.channel_mult)
        mc = self.model_channels
        emb = timestep_embedding(timesteps, mc)
        f32 = dict(dtype=jnp.float32, param_dtype=self.param_dtype)
        emb = nn.Dense(4 * mc, **f32, name="time_embed_0")(emb)
        emb = nn.Dense(4 * mc, **f32, name="time_embed_2")(nn.silu(emb))

        if lq is not None and self.cond_lq:
            if mask is not None:
                lq = jnp.concatenate([lq, mask.astype(lq.dtype)], axis=-1)
            lq = lq.astype(self.dtype)
            if self.lq_size != self.image_size:
                chn = 16
                for i in range(int(math.log(self.lq_size / self.image_size) / math.log(2))):
                    lq = nn.silu(conv(chn, 3, padding=1, **kw, name=f"feature_extractor_{3 * i}")(lq))
                    lq = conv(2 * chn, 3, stride=2, padding=1, **kw,
                              name=f"feature_extractor_{3 * i + 2}_op")(lq)
                    chn *= 2
            x = jnp.concatenate([x.astype(jnp.float32), lq.astype(jnp.float32)], axis=-1)

        h = conv(int(self.channel_mult[0] * mc), 3, padding=1, **f32, name="input_blocks_0_0")(
            x.astype(jnp.float32)).astype(self.dtype)
        hs, ds, ch, index = [h], self.image_size, int(self.channel_mult[0] * mc), 1
        for level, mult in enumerate(self.channel_mult):
            for j in range(blocks[level]):
                ch = int(mult * mc)
                h = ResBlock(ch, self.use_scale_shift_norm, **kw, name=f"input_blocks_{index}_0")(h, emb)
                if ds in self.attention_resolutions and j == 0:
                    h = self._swin(ch, ds, f"input_blocks_{index}_1")(h)
                hs.append(h)
                index += 1
            if level != len(self.channel_mult) - 1:
                h = conv(ch, 3, stride=2, padding=1, **kw, name=f"input_blocks_{index}_0_op")(h)
                hs.append(h)
                index += 1
                ds //= 2

        h = ResBlock(ch, self.use_scale_shift_norm, **kw, name="middle_block_0")(h, emb)
        h = self._swin(ch, ds, "middle_block_1")(h)
        h = ResBlock(ch, self.use_scale_shift_norm, **kw, name="middle_block_2")(h, emb)

        index = 0
        for level, mult in list(enumerate(self.channel_mult))[::-1]:
            for i in range(blocks[level] + 1):
                h = jnp.concatenate([h, hs.pop()], axis=-1)
                ch = int(mc * mult)
                h = ResBlock(ch, self.use_scale_shift_norm, **kw, name=f"output_blocks_{index}_0")(h, emb)
                sub = 1
                if ds in self.attention_resolutions and i == 0:
                    h = self._swin(ch, ds, f"output_blocks_{index}_1")(h)
                    sub = 2
                if level and i == blocks[level]:
                    h = UpsampleConv(ch, **kw, name=f"output_blocks_{index}_{sub}_conv")(h)
                    ds *= 2
                index += 1

        h = nn.silu(GroupNorm32(**kw, name="out_0")(h))
        return conv(self.out_channels, 3, padding=1, **f32, name="out_2")(h)


def example_inputs(model: UNetModelSwin, batch: int = 1):
    """Positional (x, t, lq, mask) of the configured size, for `model.init(key, *inputs)`."""
    size = model.image_size
    x = jnp.zeros((batch, size, size, model.in_channels), jnp.float32)
    t = jnp.zeros((batch,), jnp.int32)
    lq = jnp.zeros((batch, model.lq_size, model.lq_size, 3), jnp.float32) if model.cond_lq else None
    mask = (jnp.zeros((batch, model.lq_size, model.lq_size, 1), jnp.float32)
            if model.cond_mask else None)
    return x, t, lq, mask


CPU_INIT_COMPILE_OPTIONS = {"xla_backend_optimization_level": 1}


def _compiled_for_init(fn, key):
    """`fn` jitted and compiled for `key`, with LLVM at -O1 on CPUs: an init program is run
    once, and at -O1 its threefry loops compile about twice as fast, to the same bits (tested)."""
    options = CPU_INIT_COMPILE_OPTIONS if jax.default_backend() == "cpu" else None
    return jax.jit(fn).lower(key).compile(options)


def flax_init_params(model: UNetModelSwin, key):
    """Fresh params from Flax's default initialisers (`train.init = "flax"`): host arrays,
    equal bit for bit to jitting `model.init` (tested)."""
    def init(init_key):
        return model.init(init_key, *example_inputs(model))["params"]
    return jax.device_get(_compiled_for_init(init, key)(key))


def init_params(model: UNetModelSwin, key):
    """Fresh params drawn as the reference's are: torch's defaults, and every ResBlock's last
    conv zeroed (its `zero_module`), so each residual block starts as the identity.

    Host (numpy) arrays, equal bit for bit to jitting `model.init` then `torch_default_init`
    (tested), but 5x faster to set up on a CPU (28 -> 5.5 s for the tiny test UNet, 40 -> 9 s
    for v3): one program draws the kept Flax leaves (norms, Swin's position tables) and the
    torch draws grouped by shape (`torch_init.draw`), compiled with LLVM at -O1 on CPUs (its
    ~30 threefry loops dominate the compile; -O0 would change some bits), and the
    host splits the groups into leaves. Not for use under `jit`.
    """
    def init(init_key):
        return model.init(init_key, *example_inputs(model))["params"]

    shapes = jax.eval_shape(init, key)
    plan, zeros = torch_init.draw_plan(shapes, zeroed=lambda path: path[-1] == "out_layers_3")
    drawn = {path for members in plan.values() for path, _, _ in members} | set(zeros)

    def kept_and_draws(key):
        init_key, draw_key = jax.random.split(key)
        flat = traverse_util.flatten_dict(init(init_key))
        return ({path: leaf for path, leaf in flat.items() if path not in drawn},
                torch_init.draw(plan, draw_key))

    kept, stacks = jax.device_get(_compiled_for_init(kept_and_draws, key)(key))
    tree = traverse_util.unflatten_dict({**traverse_util.flatten_dict(shapes), **kept})
    return torch_init.assemble(tree, plan, zeros, stacks,
                               zeros_like=lambda s: np.zeros(s.shape, s.dtype))
