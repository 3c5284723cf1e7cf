"""Schedules, the forward/reverse chain math and the bicubic upsampler against the reference."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resshift_jax import diffusion
from resshift_jax.parity import relative_error
from resshift_jax.resize import bicubic_upsample


def _schedules(parity_dir):
    return json.loads((parity_dir / "schedules.json").read_text())


def test_all_released_schedules_match(parity_dir):
    schedules = _schedules(parity_dir)
    assert len(schedules) == 7
    for name, entry in schedules.items():
        ours = diffusion.schedule_arrays(**entry["params"])
        for key, value in ours.items():
            ref = np.asarray(entry[key])
            assert value.shape == ref.shape, (name, key)
            assert relative_error(value, ref) < 1e-12, (name, key)


def test_respacing_keeps_evenly_spaced_steps_of_the_full_chain():
    params = dict(steps=15, min_noise_level=0.04, kappa=2.0, etas_end=0.99,
                  schedule_kwargs={"power": 0.3})
    full = diffusion.schedule_arrays(**params)
    spaced = diffusion.schedule_arrays(**params, timestep_respacing=5)
    np.testing.assert_array_equal(spaced["timestep_map"], [0, 3, 6, 9, 12])
    np.testing.assert_allclose(spaced["sqrt_etas"], full["sqrt_etas"][[0, 3, 6, 9, 12]])
    assert spaced["etas_prev"][0] == 0 and spaced["etas_prev"][1] == spaced["etas"][0]


def test_bad_schedule_settings_are_refused():
    with pytest.raises(ValueError, match="predict_type"):
        diffusion.schedule_arrays(steps=4, min_noise_level=0.2, schedule_kwargs={"power": 0.3},
                                  predict_type="v")
    with pytest.raises(ValueError, match="schedule_name"):
        diffusion.schedule_arrays(steps=4, min_noise_level=0.2, schedule_name="linear")


@pytest.mark.parametrize("predict_type", diffusion.PREDICT_TYPES)
def test_predict_xstart_inverts_the_loss_target(predict_type):
    s = diffusion.make_schedule(steps=4, min_noise_level=0.2, kappa=2.0,
                                schedule_kwargs={"power": 0.3}, predict_type=predict_type)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.normal(k1, (3, 4, 4, 2))
    y = jax.random.normal(k2, (3, 4, 4, 2))
    noise = jax.random.normal(k3, (3, 4, 4, 2))
    t = jnp.array([0, 2, 3])
    x_t = diffusion.q_sample(s, x0, y, t, noise)
    target = diffusion.loss_target(s, x0, y, t, noise)
    np.testing.assert_allclose(diffusion.predict_xstart(s, target, x_t, y, t), x0, atol=2e-5)
    assert np.all(np.asarray(diffusion.mse_loss(s, target, x0, y, t, noise)) < 1e-10)


def test_reverse_step_with_true_xstart_lands_on_the_posterior_mean():
    s = diffusion.make_schedule(steps=4, min_noise_level=0.2, kappa=2.0,
                                schedule_kwargs={"power": 0.3})
    x0, y, x_t = (jnp.full((2, 2, 2, 1), v) for v in (0.5, -1.0, 0.3))
    t = jnp.array([0, 3])
    sample, pred = diffusion.p_sample(s, x0, x_t, y, t, noise=jnp.ones_like(x0))
    coef1, coef2 = np.asarray(s.posterior_mean_coef1), np.asarray(s.posterior_mean_coef2)
    sigma3 = np.exp(0.5 * np.asarray(s.posterior_log_variance_clipped)[3])
    np.testing.assert_allclose(sample[0], coef1[0] * 0.3 + coef2[0] * 0.5, rtol=1e-6)  # t=0: no noise
    np.testing.assert_allclose(sample[1], coef1[3] * 0.3 + coef2[3] * 0.5 + sigma3, rtol=1e-6)
    assert coef1[0] == 0 and np.isclose(coef2[0], 1)


def test_bicubic_matches_torch_interpolate(parity_dir):
    io = np.load(parity_dir / "bicubic_io.npz")
    y = io["y"].transpose(0, 2, 3, 1)
    for scale in (2, 4):
        ours = np.asarray(bicubic_upsample(jnp.asarray(y), scale)).transpose(0, 3, 1, 2)
        assert relative_error(ours, io[f"up{scale}"]) < 2e-5
    assert not np.allclose(
        np.asarray(jax.image.resize(y, (2, 68, 92, 3), "bicubic")).transpose(0, 3, 1, 2),
        io["up4"], atol=1e-3)
