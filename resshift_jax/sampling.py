"""The ResShift reverse chain as one compiled program: upsample, encode, scan, decode.

`make_restore_fn` returns a jitted pure function of (params, lq[, mask], key or noises);
jax.jit compiles it once per input shape and dtype, and every image or tile of that
shape reuses the executable. The reverse chain runs under `lax.scan` (or, for
debugging, the same body in a Python loop). Its step is the restorer's `sampler`:
"ddpm" (ResShift's stochastic posterior), "ddim" (SinSR's deterministic ODE step) or
"onestep" (one network call at t = T-1, its x0 prediction: a SinSR student).
"""
import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from resshift_jax import diffusion
from resshift_jax.casts import cast_once
from resshift_jax.resize import bicubic_upsample

SAMPLERS = ("ddpm", "ddim", "onestep")


@dataclasses.dataclass(frozen=True)
class Restorer:
    """The three networks' roles in the chain; params are passed at call time."""
    unet: nn.Module
    vq: Optional[nn.Module]
    schedule: diffusion.Schedule
    sf: int
    sampler: str = "ddpm"

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}, expected one of {SAMPLERS}")

    @property
    def num_steps(self) -> int:
        """Network calls per restoration."""
        return 1 if self.sampler == "onestep" else self.schedule.num_timesteps

    @property
    def stochastic(self) -> bool:
        """Whether each step draws noise (only the prior noise is drawn otherwise)."""
        return self.sampler == "ddpm"

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

    def denoise(self, unet_params, x_t, t, lq, mask, net_t=None):
        """The network's x0 (or eps/residual) prediction for x_t at spaced step t.

        The input is scaled for step t; the network is told step `net_t` (default t): SinSR's
        inverse map x0 -> x_T scales like T-1 but tells 0.
        """
        s = self.schedule
        if self.vq is None and lq is not None and lq.shape[1:3] != x_t.shape[1:3]:
            lq = bicubic_upsample(lq, self.sf)  # pixel space: condition at the image's size
        return self.unet.apply({"params": unet_params}, diffusion.scale_input(s, x_t, t),
                               s.timestep_map[t if net_t is None else net_t], lq=lq, mask=mask)


def draw_noises(key, latent_shape, num_steps: int, dtype=jnp.float32):
    """Prior noise and per-step noises (None for num_steps 0); step i's from fold_in(key, i).

    The prior noise depends on the key only, so every sampler starts from the same x_T. With
    one key per example (shape (B,)) each example draws from its own key, so its noise does
    not depend on which batch, slot or device it lands in.
    """
    if jnp.ndim(key) == 1:
        prior, steps = jax.vmap(
            lambda k: draw_noises(k, latent_shape[1:], num_steps, dtype))(key)
        return prior, None if steps is None else jnp.swapaxes(steps, 0, 1)
    prior_key, steps_key = jax.random.split(key)
    prior = jax.random.normal(prior_key, latent_shape, dtype)
    if num_steps == 0:
        return prior, None
    steps = jax.vmap(lambda i: jax.random.normal(
        jax.random.fold_in(steps_key, i), latent_shape, dtype))(jnp.arange(num_steps))
    return prior, steps


def reverse_step(restorer: Restorer, unet_params, x_t, t, z_y, lq, mask, noise):
    """One reverse step x_t -> (x_{t-1}, x0 prediction) at spaced steps t (one per example),
    by `restorer.sampler`; the scan body and the parity runner's teacher-forced check share it."""
    s = restorer.schedule
    clip = restorer.vq is None
    model_out = restorer.denoise(unet_params, x_t, t, lq, mask).astype(x_t.dtype)
    if restorer.sampler == "ddpm":
        return diffusion.p_sample(s, model_out, x_t, z_y, t, noise, clip_denoised=clip)
    if restorer.sampler == "ddim":
        return diffusion.ddim_sample(s, model_out, x_t, z_y, t, clip_denoised=clip)
    pred = diffusion.predict_xstart(s, model_out, x_t, z_y, t)
    pred = jnp.clip(pred, -1, 1) if clip else pred
    return pred, pred


def reverse_chain(restorer: Restorer, unet_params, z_y, lq, mask, noise_prior, noise_steps=None,
                  *, use_scan: bool = True):
    """x_T = z_y + kappa sqrt(eta_T) noise, then `restorer.num_steps` reverse steps from
    t = T-1 down; returns every step's sample and x0 prediction (stacked). The network's
    weights are converted to its compute dtype once, before the steps (`cast_once`; a trace
    of the network that a float32 network with float32 weights does not need)."""
    s = restorer.schedule
    last = s.num_timesteps - 1
    batch = z_y.shape[0]
    if restorer.stochastic and noise_steps is None:
        raise ValueError("the ddpm sampler needs noise_steps")
    x_T = diffusion.prior_sample(s, z_y, noise_prior)
    if any(leaf.dtype != jnp.dtype(restorer.unet.dtype) for leaf in jax.tree.leaves(unet_params)):
        unet_params = cast_once(restorer.denoise, unet_params, x_T,
                                jnp.full((batch,), last, jnp.int32), lq, mask)

    def step(x_t, inputs):
        i, noise = inputs
        t = jnp.full((batch,), last - i, jnp.int32)
        sample, pred = reverse_step(restorer, unet_params, x_t, t, z_y, lq, mask, noise)
        return sample, (sample, pred)

    steps = jnp.arange(restorer.num_steps)
    noises = noise_steps if restorer.stochastic else None
    if use_scan:
        _, (samples, preds) = jax.lax.scan(step, x_T, (steps, noises))
        return samples, preds
    x, outs = x_T, []
    for i in range(restorer.num_steps):
        x, out = step(x, (steps[i], None if noises is None else noises[i]))
        outs.append(out)
    return jnp.stack([o[0] for o in outs]), jnp.stack([o[1] for o in outs])


def canvas_noises(key, latent_shape, num_steps: int, canvas, dtype=jnp.float32):
    """`draw_noises` on a (canvas_h, canvas_w) latent, cropped to `latent_shape`: the noise at
    each latent position depends on the key and the position only, not on how far the input
    was padded (so padding an image further changes only what the network sees)."""
    b, h, w, c = latent_shape
    if canvas[0] < h or canvas[1] < w:
        raise ValueError(f"noise canvas {canvas} is smaller than the latent {(h, w)}")
    prior, steps = draw_noises(key, (b, *canvas, c), num_steps, dtype)
    return prior[:, :h, :w], None if steps is None else steps[:, :, :h, :w]


def restore(restorer: Restorer, params: dict, lq, *, mask=None, key=None, noises=None,
            use_scan: bool = True, return_chain: bool = False, noise_canvas=None):
    """LQ batch (NHWC, [-1, 1]) -> restored batch (NHWC, [-1, 1], clamped).

    `params` holds `unet` and `vq` trees; the compute dtype is the modules' `dtype`, the
    chain state stays float32. Give either a PRNG `key` (or one per example) or
    `noises=(noise_prior, noise_steps)` in latent layout (noise_steps may be None for the
    deterministic samplers). With `return_chain` it returns the unclamped decode and every
    intermediate, named as the parity fixtures. `noise_canvas` (H, W in LQ pixels, at least
    the input's) draws a key's noise on that canvas and crops it (`canvas_noises`).
    """
    lq = lq.astype(jnp.float32)
    z_y = restorer.encode(params.get("vq"), bicubic_upsample(lq, restorer.sf))
    z_y = z_y.astype(jnp.float32)
    if noises is None:
        num_steps = restorer.num_steps if restorer.stochastic else 0
        if noise_canvas is None:
            noises = draw_noises(key, z_y.shape, num_steps)
        else:
            canvas = tuple(c * z // x for c, z, x in zip(noise_canvas, z_y.shape[1:3], lq.shape[1:3]))
            noises = canvas_noises(key, z_y.shape, num_steps, canvas)
    noise_prior, noise_steps = noises
    samples, preds = reverse_chain(restorer, params["unet"], z_y, lq, mask,
                                   noise_prior, noise_steps, use_scan=use_scan)
    decoded = restorer.decode(params.get("vq"), samples[-1]).astype(jnp.float32)
    if return_chain:
        return {"out": decoded, "z_y": z_y, "samples": samples, "pred_xstart": preds}
    return jnp.clip(decoded, -1.0, 1.0)


def make_restore_fn(restorer: Restorer, *, use_scan: bool = True, return_chain: bool = False,
                    noise_canvas=None) -> Callable[..., Any]:
    """jit(restore) with the model structure closed over; compiled once per input shape."""
    def fn(params, lq, mask=None, key=None, noises=None):
        return restore(restorer, params, lq, mask=mask, key=key, noises=noises,
                       use_scan=use_scan, return_chain=return_chain, noise_canvas=noise_canvas)
    return jax.jit(fn)
