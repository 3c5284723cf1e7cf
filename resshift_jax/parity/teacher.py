"""Teacher-forced steps: every reverse step run from the reference's recorded state.

In the free chain each step starts from the port's previous step, so float32 rounding
compounds, and a long chain amplifies it until the reference's own runs disagree as much.
Fed the reference's x_t instead (x_T from its z_y and the prior noise, then its
samples[i-1]), each step is one network pass and one posterior update: it must agree
within the single-pass tolerance at every step, chaos cannot build up, and a formula
error shows at the step where it enters.
"""
import numpy as np

from resshift_jax.parity.compare import relative_error
from resshift_jax.parity.layout import nchw, nhwc

ARRAYS = ("samples", "pred_xstart")


def teacher_forced(restorer, params, io: dict) -> dict:
    """{teacher_samples, teacher_pred_xstart}: step i from the reference's state (NCHW stacks)."""
    import jax
    import jax.numpy as jnp
    from resshift_jax import diffusion
    from resshift_jax.sampling import reverse_step
    z_y, lq = nhwc(io["z_y"]), nhwc(io["lq"])
    mask = nhwc(io["mask"]) if "mask" in io else None
    num_steps = restorer.schedule.num_timesteps

    @jax.jit
    def run(unet_params, samples, noise_prior, noise_steps):
        x_T = diffusion.prior_sample(restorer.schedule, z_y, noise_prior)
        states = jnp.concatenate([x_T[None], samples[:-1]])
        steps = jnp.arange(num_steps - 1, -1, -1)

        def one(inputs):
            x_t, t, noise = inputs
            t = jnp.full((x_t.shape[0],), t, jnp.int32)
            return reverse_step(restorer, unet_params, x_t, t, z_y, lq, mask, noise)
        return jax.lax.map(one, (states, steps, noise_steps))

    samples, preds = run(params["unet"], nhwc(io["samples"]), nhwc(io["noise_prior"]),
                         nhwc(io["noise_steps"]))
    return {"teacher_samples": nchw(samples), "teacher_pred_xstart": nchw(preds)}


def step_errors(ours: dict, io: dict) -> dict:
    """Per array, (relative error, max abs difference) of each teacher-forced step."""
    out = {}
    for k in ARRAYS:
        pairs = list(zip(np.asarray(ours[f"teacher_{k}"], np.float64), io[k]))
        out[k] = (np.array([relative_error(a, b) for a, b in pairs]),
                  np.array([np.max(np.abs(a - b)) for a, b in pairs]))
    return out
