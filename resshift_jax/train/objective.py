"""The ResShift training objective: residual-shift MSE in latent space, plus optional LPIPS.

The VQ autoencoder is frozen (its params are not differentiated). The journal recipe
also decodes the predicted x0 (quantized decode, straight-through) and adds LPIPS
against the HQ image, as the reference's TrainerDifIRLPIPS does.
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from resshift_jax import diffusion
from resshift_jax.resize import bicubic_upsample
from resshift_jax.sampling import Restorer


def latent_pair(restorer: Restorer, vq_params, hq, lq):
    """z_start = encode(hq), z_y = encode(bicubic_sf(lq)); both frozen, one encoder pass."""
    both = jnp.concatenate([hq, bicubic_upsample(lq, restorer.sf)])
    z_start, z_y = jnp.split(restorer.encode(vq_params, both), 2)
    return (jax.lax.stop_gradient(z_start.astype(jnp.float32)),
            jax.lax.stop_gradient(z_y.astype(jnp.float32)))


def diffusion_terms(restorer: Restorer, unet_params, z_start, z_y, lq, t, noise, mask=None):
    """Per-example MSE and the network's x0 prediction for the given t and noise."""
    s = restorer.schedule
    z_t = diffusion.q_sample(s, z_start, z_y, t, noise)
    out = restorer.denoise(unet_params, z_t, t, lq, mask).astype(jnp.float32)
    mse = diffusion.mse_loss(s, out, z_start, z_y, t, noise)
    return {"mse": mse, "z_t": z_t, "pred_zstart": diffusion.predict_xstart(s, out, z_t, z_y, t)}


def make_loss_fn(restorer: Restorer, *, mse_coef: float = 1.0, lpips_coef: float = 0.0,
                 lpips_module: Optional[nn.Module] = None):
    """loss_fn(unet_params, batch, keys, frozen) -> (scalar loss, metrics) for the train step.

    `batch` holds `hq`, `lq` (NHWC, [-1, 1]) and optionally `mask`; each example's t and
    latent noise are drawn from its own key in `keys`. `frozen` holds the params that are
    not trained: `vq` (absent in pixel space) and, when `lpips_coef` > 0, `lpips` for
    `lpips_module(x, y) -> (B,)`.
    """
    if lpips_coef > 0 and lpips_module is None:
        raise ValueError("loss_coef.lpips > 0 needs an LPIPS network")

    def loss_fn(unet_params, batch, keys, frozen):
        hq, lq, mask = batch["hq"], batch["lq"], batch.get("mask")
        vq_params = frozen.get("vq")
        z_start, z_y = latent_pair(restorer, vq_params, hq, lq)
        pairs = jax.vmap(jax.random.split)(keys)  # (B, 2): t's key, the noise's key
        t_keys, noise_keys = pairs[:, 0], pairs[:, 1]
        t = jax.vmap(lambda k: jax.random.randint(
            k, (), 0, restorer.schedule.num_timesteps))(t_keys)
        noise = jax.vmap(lambda k: jax.random.normal(k, z_start.shape[1:], jnp.float32))(noise_keys)
        terms = diffusion_terms(restorer, unet_params, z_start, z_y, lq, t, noise, mask)
        per_example = mse_coef * terms["mse"]
        metrics = {"mse": jnp.mean(terms["mse"])}
        if lpips_coef > 0:
            # Keep only the decoder's conv outputs for the backward; norms and activations are
            # recomputed (fused into the convs) instead of stored: less memory, ~3% faster.
            decode = jax.checkpoint(restorer.decode, policy=jax.checkpoint_policies.checkpoint_dots)
            x0 = decode(vq_params, terms["pred_zstart"]).astype(jnp.float32)
            lpips = lpips_module.apply({"params": frozen["lpips"]}, jnp.clip(x0, -1.0, 1.0), hq)
            per_example = per_example + lpips_coef * lpips.reshape(-1)
            metrics["lpips"] = jnp.mean(lpips)
        loss = jnp.mean(per_example)
        metrics["loss"] = loss
        return loss, metrics

    return loss_fn
