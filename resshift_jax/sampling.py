"""The ResShift reverse chain as one compiled program: upsample, encode, scan, decode.

`make_restore_fn` returns a jitted pure function of (params, lq[, mask], key or noises);
jax.jit compiles it once per input shape and dtype, and every image or tile of that
shape reuses the executable. The reverse chain runs under `lax.scan` (or, for
debugging, the same body in a Python loop).
"""
import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from resshift_jax import diffusion
from resshift_jax.resize import bicubic_upsample


@dataclasses.dataclass(frozen=True)
class Restorer:
    """The three networks' roles in the chain; params are passed at call time."""
    unet: nn.Module
    vq: Optional[nn.Module]
    schedule: diffusion.Schedule
    sf: int

    def encode(self, vq_params, images):
        """Image in [-1, 1] -> latent (not quantized), times the schedule's scale_factor."""
        if self.vq is None:
            return images
        z = self.vq.apply({"params": vq_params}, images, method="encode")
        return z * self.schedule.scale_factor

    def decode(self, vq_params, z):
        """Latent -> image (quantized decode, as the reference)."""
        if self.vq is None:
            return z
        return self.vq.apply({"params": vq_params}, z / self.schedule.scale_factor,
                             method="decode")

    def denoise(self, unet_params, x_t, t, lq, mask):
        """The network's x0 (or eps/residual) prediction for x_t at spaced step t."""
        s = self.schedule
        if self.vq is None and lq is not None and lq.shape[1:3] != x_t.shape[1:3]:
            lq = bicubic_upsample(lq, self.sf)  # pixel space: condition at the image's size
        return self.unet.apply({"params": unet_params}, diffusion.scale_input(s, x_t, t),
                               s.timestep_map[t], lq=lq, mask=mask)


def draw_noises(key, latent_shape, num_steps: int, dtype=jnp.float32):
    """Prior noise and per-step noises; step i's noise comes from fold_in(key, i).

    With one key per example (shape (B,)) each example draws from its own key, so its
    noise does not depend on which batch, slot or device it lands in.
    """
    if jnp.ndim(key) == 1:
        prior, steps = jax.vmap(
            lambda k: draw_noises(k, latent_shape[1:], num_steps, dtype))(key)
        return prior, jnp.swapaxes(steps, 0, 1)
    prior_key, steps_key = jax.random.split(key)
    prior = jax.random.normal(prior_key, latent_shape, dtype)
    steps = jax.vmap(lambda i: jax.random.normal(
        jax.random.fold_in(steps_key, i), latent_shape, dtype))(jnp.arange(num_steps))
    return prior, steps


def reverse_step(restorer: Restorer, unet_params, x_t, t, z_y, lq, mask, noise):
    """One reverse step x_t -> (x_{t-1}, x0 prediction) at spaced steps t (one per example)."""
    model_out = restorer.denoise(unet_params, x_t, t, lq, mask)
    return diffusion.p_sample(restorer.schedule, model_out.astype(x_t.dtype), x_t, z_y, t, noise,
                              clip_denoised=restorer.vq is None)


def reverse_chain(restorer: Restorer, unet_params, z_y, lq, mask, noise_prior, noise_steps,
                  *, use_scan: bool = True):
    """x_T = z_y + kappa sqrt(eta_T) noise, then T reverse steps; returns all samples."""
    s = restorer.schedule
    num_steps = s.num_timesteps
    batch = z_y.shape[0]

    def step(x_t, inputs):
        i, noise = inputs
        t = jnp.full((batch,), num_steps - 1 - i, jnp.int32)
        sample, pred_xstart = reverse_step(restorer, unet_params, x_t, t, z_y, lq, mask, noise)
        return sample, (sample, pred_xstart)

    x_T = diffusion.prior_sample(s, z_y, noise_prior)
    xs = (jnp.arange(num_steps), noise_steps)
    if use_scan:
        _, (samples, preds) = jax.lax.scan(step, x_T, xs)
        return samples, preds
    x, outs = x_T, []
    for i in range(num_steps):
        x, out = step(x, (xs[0][i], xs[1][i]))
        outs.append(out)
    return jnp.stack([o[0] for o in outs]), jnp.stack([o[1] for o in outs])


def restore(restorer: Restorer, params: dict, lq, *, mask=None, key=None, noises=None,
            use_scan: bool = True, return_chain: bool = False):
    """LQ batch (NHWC, [-1, 1]) -> restored batch (NHWC, [-1, 1], clamped).

    `params` holds `unet` and `vq` trees; the compute dtype is the modules' `dtype`, the
    chain state stays float32. Give either a PRNG `key` (or one per example) or
    `noises=(noise_prior, noise_steps)` in latent layout. With `return_chain` it returns the
    unclamped decode and every intermediate, named as the parity fixtures.
    """
    lq = lq.astype(jnp.float32)
    z_y = restorer.encode(params.get("vq"), bicubic_upsample(lq, restorer.sf))
    z_y = z_y.astype(jnp.float32)
    if noises is None:
        noises = draw_noises(key, z_y.shape, restorer.schedule.num_timesteps)
    noise_prior, noise_steps = noises
    samples, preds = reverse_chain(restorer, params["unet"], z_y, lq, mask,
                                   noise_prior, noise_steps, use_scan=use_scan)
    decoded = restorer.decode(params.get("vq"), samples[-1]).astype(jnp.float32)
    if return_chain:
        return {"out": decoded, "z_y": z_y, "samples": samples, "pred_xstart": preds}
    return jnp.clip(decoded, -1.0, 1.0)


def make_restore_fn(restorer: Restorer, *, use_scan: bool = True,
                    return_chain: bool = False) -> Callable[..., Any]:
    """jit(restore) with the model structure closed over; compiled once per input shape."""
    def fn(params, lq, mask=None, key=None, noises=None):
        return restore(restorer, params, lq, mask=mask, key=key, noises=noises,
                       use_scan=use_scan, return_chain=return_chain)
    return jax.jit(fn)
