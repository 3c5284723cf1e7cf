"""ResShift's VQ autoencoder (`VQModelTorch`): encoder, nearest-code quantizer, decoder.

`encode` returns the unquantized latent (encoder + quant_conv) as the reference does;
`decode` quantizes first unless told not to. The quantized latent is straight-through
(`z + stop_gradient(z_q - z)`), so gradients reach the latent when training decodes
predicted latents (the LPIPS term).
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from resshift_jax.models.layers import conv
from resshift_jax.models.quantize import nearest_codes
from resshift_jax.models.vq_layers import Decoder, Encoder

Dtype = Any


def _codebook_init(key, shape, dtype=jnp.float32):
    """U(-1/n, 1/n), the reference's codebook initialisation."""
    return jax.random.uniform(key, shape, dtype, -1.0 / shape[0], 1.0 / shape[0])


# ddconfig keys of the reference's Encoder/Decoder, and the values this port implements
# (`None`: any value). Dropout is inert: the autoencoder is frozen and runs in eval mode.
_DDCONFIG = {"ch": None, "out_ch": None, "ch_mult": None, "num_res_blocks": None,
             "attn_resolutions": None, "dropout": None, "in_channels": None, "resolution": None,
             "z_channels": None, "padding_mode": ("zeros",), "double_z": (False,),
             "resamp_with_conv": (True,), "use_linear_attn": (False,),
             "attn_type": ("vanilla",), "give_pre_end": (False,), "tanh_out": (False,)}


def architecture(ddconfig) -> dict:
    """`ddconfig` as a dict, refusing keys or values the VQ model cannot honour.

    `double_z` must be given as False: the reference's Encoder defaults to True, which its
    VQ model's quant_conv cannot take. `padding_mode` must be "zeros" (every released
    config): the reference's active Encoder/Decoder ignore the value and always pad with
    zeros, so another value is refused rather than silently computing something else.
    """
    dd = dict(ddconfig)
    unknown = sorted(set(dd) - set(_DDCONFIG))
    if unknown:
        raise ValueError(f"unknown ddconfig keys {unknown}")
    dd.setdefault("double_z", True)
    for key, allowed in _DDCONFIG.items():
        if allowed is not None and key in dd and dd[key] not in allowed:
            raise ValueError(f"ddconfig {key}={dd[key]!r} is not supported (only {allowed})")
    return dd


class VQModel(nn.Module):
    """`VQModelTorch(ddconfig, n_embed, embed_dim, remap, sane_index_shape)`, NHWC.

    `sane_index_shape` is accepted for config compatibility: indices are always (B, h, w).
    `block_budget` bounds, in bytes of float32, the blocks of the mid-level attention's
    scores (models/attention.py) and of the quantizer's distances (models/quantize.py);
    None: the compiling platform's budget.
    """
    ddconfig: dict
    n_embed: int
    embed_dim: int
    remap: Optional[str] = None
    sane_index_shape: bool = False
    block_budget: Optional[int] = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self):
        if self.remap is not None:
            raise NotImplementedError("codebook remapping is not used by any released model")
        dd = architecture(self.ddconfig)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        common = dict(ch=dd["ch"], ch_mult=tuple(dd["ch_mult"]), num_res_blocks=dd["num_res_blocks"],
                      attn_resolutions=tuple(dd["attn_resolutions"]), resolution=dd["resolution"],
                      padding_mode=dd.get("padding_mode", "zeros"), attn_budget=self.block_budget)
        self.encoder = Encoder(**common, z_channels=dd["z_channels"], **kw)
        self.decoder = Decoder(**common, out_ch=dd["out_ch"], **kw)
        f32 = dict(dtype=jnp.float32, param_dtype=self.param_dtype)  # latent-side 1x1 convs
        self.quant_conv = conv(self.embed_dim, 1, **f32, name=None)
        self.post_quant_conv = conv(dd["z_channels"], 1, **f32, name=None)
        self.quantize_embedding = nn.Embed(self.n_embed, self.embed_dim, embedding_init=_codebook_init,
                                           param_dtype=self.param_dtype)

    def encode(self, x):
        """Image (NHWC, [-1, 1]) -> latent, not quantized."""
        return self.quant_conv(self.encoder(x))

    def quantize(self, z):
        """Nearest codebook entries of `z` (straight-through) and their indices (B, h, w)."""
        z32 = z.astype(jnp.float32)
        codebook = self.quantize_embedding.embedding.astype(jnp.float32)
        indices = nearest_codes(z32.reshape(z32.shape[0], -1, self.embed_dim), codebook,
                                self.block_budget)
        z_q = codebook[indices].reshape(z32.shape)
        z_q = z32 + jax.lax.stop_gradient(z_q - z32)
        return z_q.astype(z.dtype), indices.reshape(z.shape[:-1]).astype(jnp.int32)

    def decode(self, z, force_not_quantize: bool = False):
        """Latent -> image; the latent is quantized first unless `force_not_quantize`."""
        if not force_not_quantize:
            z, _ = self.quantize(z)
        return self.decoder(self.post_quant_conv(z)).astype(jnp.float32)

    def __call__(self, x):
        """Encode and decode (quantized); touches every submodule, for `init`."""
        return self.decode(self.encode(x))


def example_inputs(model: VQModel, batch: int = 1):
    """A small image for `init`: parameter shapes do not depend on the spatial size."""
    size = 2 ** len(model.ddconfig["ch_mult"])
    return (jnp.zeros((batch, size, size, model.ddconfig["in_channels"]), jnp.float32),)
