"""The real ResShift objective on the tiny architecture: the train step lowers it."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from skimage import data as skdata

from configs.tiny_test import get_config
from resshift_jax.builder import restorer_from_config
from resshift_jax.convert.lpips import lpips_params_from_torch
from resshift_jax.models.lpips import LPIPS
from resshift_jax.train.experiment import init_unet_params, load_frozen
from resshift_jax.train.objective import make_loss_fn
from resshift_jax.train.state import create_state
from resshift_jax.train.step import make_train_step
from tests.lpips_weights import random_lpips_state_dicts


def _batch():
    """A 128 px photograph crop in [-1, 1] and its 32 px area-downsampled LQ."""
    photo = skdata.astronaut().astype(np.float32) / 127.5 - 1.0
    hq = jnp.asarray(photo[None, 100:228, 150:278])
    lq = jax.image.resize(hq, (1, 32, 32, 3), "linear", antialias=True)
    return {"hq": hq, "lq": lq}


STEPS = 20


def test_tiny_resshift_mse_plus_lpips_loss_falls():
    """20 Adam steps on one batch with MSE + LPIPS (random VGG weights): the
    loss at a fixed t and noise falls by half, through the VQ encode, the rematerialised
    decode and LPIPS."""
    config = get_config()
    restorer = restorer_from_config(config, jnp.float32)
    lpips = LPIPS()
    batch = _batch()
    frozen = {"vq": load_frozen(config, restorer)["vq"],
              "lpips": lpips_params_from_torch(*random_lpips_state_dicts(0))}
    loss_fn = make_loss_fn(restorer, mse_coef=1.0, lpips_coef=1.0, lpips_module=lpips)
    params = init_unet_params(config, restorer, jax.random.key(0))
    optimizer = optax.adam(2e-3)
    step = jax.jit(make_train_step(loss_fn, optimizer, ema_rate=0.9))
    state = create_state(params, optimizer, 0)
    keys = jax.random.split(jax.random.key(7), len(batch["hq"]))  # one per example
    probe = jax.jit(lambda p, b, f: loss_fn(p, b, keys, f))
    first, first_metrics = probe(state.params, batch, frozen)
    for _ in range(STEPS):
        state, metrics = step(state, batch, frozen)
    last, _ = probe(state.params, batch, frozen)
    assert int(metrics["nonfinite_total"]) == 0
    assert float(first_metrics["lpips"]) > 0 and float(first_metrics["mse"]) > 0
    assert float(last) < 0.5 * float(first), (float(first), float(last))
