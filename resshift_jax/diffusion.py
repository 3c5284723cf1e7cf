"""Residual-shifting diffusion: the eta schedule and the pure math of the Markov chain.

x_t = x_0 + eta_t (y_0 - x_0) + kappa sqrt(eta_t) noise. The schedule is computed once in
float64 with numpy (as the reference does) and carried as float32 device arrays inside a
`Schedule` pytree, so every function here is jit-able and vmappable. Two reverse steps:
ResShift's stochastic posterior (`p_sample`) and SinSR's deterministic one (`ddim_sample`).
"""
import math
from typing import Optional

import flax.struct
import jax.numpy as jnp
import numpy as np

PREDICT_TYPES = ("xstart", "epsilon", "residual", "epsilon_scale")


def exponential_sqrt_etas(steps: int, min_noise_level: float, etas_end: float,
                          kappa: float, power: float) -> np.ndarray:
    """sqrt(eta_t) growing geometrically (warped by `power`) from the noise floor to etas_end."""
    etas_start = min(min_noise_level / kappa, min_noise_level)
    increaser = math.exp(1 / (steps - 1) * math.log(etas_end / etas_start))
    base = np.ones([steps]) * increaser
    power_timestep = np.linspace(0, 1, steps, endpoint=True) ** power * (steps - 1)
    return np.power(base, power_timestep) * etas_start


def respaced_timesteps(steps: int, respacing: Optional[int]) -> np.ndarray:
    """The original timesteps kept when sampling with `respacing` steps (sorted)."""
    respacing = steps if respacing is None else int(respacing)
    return np.array(sorted({int((steps / respacing) * x) for x in range(respacing)}), np.int64)


def schedule_arrays(*, steps: int, min_noise_level: float, etas_end: float = 0.99,
                    kappa: float = 1.0, schedule_name: str = "exponential",
                    schedule_kwargs: Optional[dict] = None, timestep_respacing=None,
                    predict_type: str = "xstart", **_ignored) -> dict:
    """All float64 schedule arrays of a (possibly respaced) chain, named as the reference."""
    if schedule_name != "exponential":
        raise ValueError(f"unknown schedule_name {schedule_name!r} (only 'exponential')")
    if predict_type not in PREDICT_TYPES:
        raise ValueError(f"unknown predict_type {predict_type!r}, expected one of {PREDICT_TYPES}")
    power = (schedule_kwargs or {})["power"]
    full = exponential_sqrt_etas(steps, min_noise_level, etas_end, kappa, power)
    timestep_map = respaced_timesteps(steps, timestep_respacing)
    sqrt_etas = full[timestep_map]
    etas = sqrt_etas ** 2
    if not ((etas > 0).all() and (etas <= 1).all()):
        raise ValueError("eta schedule must lie in (0, 1]")
    etas_prev = np.append(0.0, etas[:-1])
    alpha = etas - etas_prev
    posterior_variance = kappa ** 2 * etas_prev / etas * alpha
    posterior_variance_clipped = np.append(posterior_variance[1], posterior_variance[1:])
    if predict_type in ("xstart", "residual"):
        weight_loss_mse = 0.5 / posterior_variance_clipped * (alpha / etas) ** 2
    else:
        weight_loss_mse = 0.5 / posterior_variance_clipped * (
            kappa * alpha / ((1 - etas) * sqrt_etas)) ** 2
    return {
        "sqrt_etas": sqrt_etas,
        "etas": etas,
        "etas_prev": etas_prev,
        "alpha": alpha,
        "posterior_variance": posterior_variance,
        "posterior_variance_clipped": posterior_variance_clipped,
        "posterior_log_variance_clipped": np.log(posterior_variance_clipped),
        "posterior_mean_coef1": etas_prev / etas,
        "posterior_mean_coef2": alpha / etas,
        "weight_loss_mse": weight_loss_mse,
        "timestep_map": timestep_map,
    }


def ddim_coefficients(etas: np.ndarray) -> dict:
    """SinSR's deterministic step x_{t-1} = k x0 + m x_t + j y per spaced t (float64).

    x_t's noise, (x_t - x0 - eta_t (y - x0)) / (kappa sqrt(eta_t)), is kept and put back at
    level t-1: m = sqrt(eta_{t-1} / eta_t), j = eta_{t-1} - sqrt(eta_{t-1} eta_t),
    k = 1 - eta_{t-1} + sqrt(eta_{t-1} eta_t) - m. At t = 0, k = 1 and m = j = 0: the x0
    prediction itself.
    """
    etas_prev = np.append(0.0, etas[:-1])
    m = np.sqrt(etas_prev / etas)
    cross = np.sqrt(etas_prev * etas)
    return {"ddim_k": 1 - etas_prev + cross - m, "ddim_m": m, "ddim_j": etas_prev - cross}


@flax.struct.dataclass
class Schedule:
    """Schedule arrays (float32, indexed by spaced step t) and the chain's static settings."""
    sqrt_etas: jnp.ndarray
    etas: jnp.ndarray
    posterior_variance: jnp.ndarray
    posterior_log_variance_clipped: jnp.ndarray
    posterior_mean_coef1: jnp.ndarray
    posterior_mean_coef2: jnp.ndarray
    weight_loss_mse: jnp.ndarray
    timestep_map: jnp.ndarray
    ddim_k: jnp.ndarray
    ddim_m: jnp.ndarray
    ddim_j: jnp.ndarray
    kappa: float = flax.struct.field(pytree_node=False)
    predict_type: str = flax.struct.field(pytree_node=False, default="xstart")
    weighted_mse: bool = flax.struct.field(pytree_node=False, default=False)
    normalize_input: bool = flax.struct.field(pytree_node=False, default=True)
    latent_flag: bool = flax.struct.field(pytree_node=False, default=True)
    scale_factor: float = flax.struct.field(pytree_node=False, default=1.0)
    sf: int = flax.struct.field(pytree_node=False, default=4)

    @property
    def num_timesteps(self) -> int:
        return self.etas.shape[0]


def make_schedule(**params) -> Schedule:
    """Build a `Schedule` from the reference's diffusion params (configs' `diffusion`)."""
    arrays = schedule_arrays(**params)
    arrays.update(ddim_coefficients(arrays["etas"]))
    as_f32 = {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items() if k != "timestep_map"}
    return Schedule(
        sqrt_etas=as_f32["sqrt_etas"], etas=as_f32["etas"],
        posterior_variance=as_f32["posterior_variance"],
        posterior_log_variance_clipped=as_f32["posterior_log_variance_clipped"],
        posterior_mean_coef1=as_f32["posterior_mean_coef1"],
        posterior_mean_coef2=as_f32["posterior_mean_coef2"],
        weight_loss_mse=as_f32["weight_loss_mse"],
        timestep_map=jnp.asarray(arrays["timestep_map"], jnp.int32),
        ddim_k=as_f32["ddim_k"], ddim_m=as_f32["ddim_m"], ddim_j=as_f32["ddim_j"],
        kappa=float(params.get("kappa", 1.0)),
        predict_type=params.get("predict_type", "xstart"),
        weighted_mse=bool(params.get("weighted_mse", False)),
        normalize_input=bool(params.get("normalize_input", True)),
        latent_flag=bool(params.get("latent_flag", True)),
        scale_factor=float(params.get("scale_factor") or 1.0),
        sf=int(params.get("sf", 4)),
    )


def _at(arr, t, ndim: int):
    """arr[t] broadcast against a batch of rank `ndim` (batch first)."""
    return arr[t].reshape((-1,) + (1,) * (ndim - 1))


def q_sample(s: Schedule, x_start, y, t, noise):
    """Sample x_t ~ q(x_t | x_0, y): shift the residual by eta_t and add kappa sqrt(eta_t) noise."""
    nd = x_start.ndim
    return (_at(s.etas, t, nd) * (y - x_start) + x_start
            + _at(s.sqrt_etas * s.kappa, t, nd) * noise)


def scale_input(s: Schedule, x, t):
    """Normalise the network input to roughly unit variance (latent) or range (pixel)."""
    if not s.normalize_input:
        return x
    if s.latent_flag:
        return x / jnp.sqrt(_at(s.etas, t, x.ndim) * s.kappa ** 2 + 1)
    return x / (_at(s.sqrt_etas, t, x.ndim) * s.kappa * 3 + 1)


def predict_xstart(s: Schedule, model_output, x_t, y, t):
    """Turn the network output into a prediction of x_0, per `predict_type`."""
    nd = x_t.ndim
    if s.predict_type == "xstart":
        return model_output
    if s.predict_type == "residual":
        return y - model_output
    if s.predict_type == "epsilon":
        return (x_t - _at(s.sqrt_etas, t, nd) * s.kappa * model_output
                - _at(s.etas, t, nd) * y) / _at(1 - s.etas, t, nd)
    return (x_t - model_output - _at(s.etas, t, nd) * y) / _at(1 - s.etas, t, nd)


def q_posterior_mean(s: Schedule, x_start, x_t, t):
    """Mean of q(x_{t-1} | x_t, x_0)."""
    nd = x_t.ndim
    return _at(s.posterior_mean_coef1, t, nd) * x_t + _at(s.posterior_mean_coef2, t, nd) * x_start


def p_mean_variance(s: Schedule, model_output, x_t, y, t, clip_denoised: bool = False):
    """Mean, variance, log-variance of p(x_{t-1} | x_t) and the x_0 prediction."""
    pred = predict_xstart(s, model_output, x_t, y, t)
    if clip_denoised:
        pred = jnp.clip(pred, -1, 1)
    nd = x_t.ndim
    return {
        "mean": q_posterior_mean(s, pred, x_t, t),
        "variance": _at(s.posterior_variance, t, nd),
        "log_variance": _at(s.posterior_log_variance_clipped, t, nd),
        "pred_xstart": pred,
    }


def p_sample(s: Schedule, model_output, x_t, y, t, noise, clip_denoised: bool = False):
    """One reverse step: x_{t-1} = posterior mean + [t > 0] sigma_t noise."""
    out = p_mean_variance(s, model_output, x_t, y, t, clip_denoised)
    nonzero = (t != 0).astype(x_t.dtype).reshape((-1,) + (1,) * (x_t.ndim - 1))
    sample = out["mean"] + nonzero * jnp.exp(0.5 * out["log_variance"]) * noise
    return sample, out["pred_xstart"]


def ddim_sample(s: Schedule, model_output, x_t, y, t, clip_denoised: bool = False):
    """One deterministic reverse step (SinSR's `ddim_sample`, eta 0): (x_{t-1}, x0 prediction)."""
    pred = predict_xstart(s, model_output, x_t, y, t)
    if clip_denoised:
        pred = jnp.clip(pred, -1, 1)
    nd = x_t.ndim
    sample = _at(s.ddim_k, t, nd) * pred + _at(s.ddim_m, t, nd) * x_t + _at(s.ddim_j, t, nd) * y
    return sample, pred


def prior_sample(s: Schedule, y, noise):
    """x_T ~ N(y, kappa^2 eta_T I)."""
    t = jnp.full((y.shape[0],), s.num_timesteps - 1, jnp.int32)
    return y + _at(s.kappa * s.sqrt_etas, t, y.ndim) * noise


def loss_target(s: Schedule, x_start, y, t, noise):
    """What the network is trained to output, per `predict_type`."""
    return {
        "xstart": lambda: x_start,
        "residual": lambda: y - x_start,
        "epsilon": lambda: noise,
        "epsilon_scale": lambda: noise * s.kappa * _at(s.sqrt_etas, t, noise.ndim),
    }[s.predict_type]()


def mse_loss(s: Schedule, model_output, x_start, y, t, noise):
    """Per-example MSE over (H, W, C), with the reference's scaling and optional KL weights."""
    target = loss_target(s, x_start, y, t, noise)
    mse = jnp.mean((target - model_output) ** 2, axis=tuple(range(1, target.ndim)))
    if s.predict_type == "epsilon_scale":
        mse = mse / (s.kappa ** 2 * s.etas[t])
    if s.weighted_mse:
        mse = mse * s.weight_loss_mse[t]
    return mse
