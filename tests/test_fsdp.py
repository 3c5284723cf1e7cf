"""FSDP (train.fsdp): params, optimizer state and EMA split over the devices, same training."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from resshift_jax import sharding
from resshift_jax.train.loop import train_and_evaluate
from tests.test_train import FROZEN, ToyData, example_noise, toy_config

_rng = np.random.default_rng(0)
INIT = {"w1": 0.5 * _rng.normal(size=(4, 64)).astype(np.float32), "b1": np.zeros(64, np.float32),
        "w2": 0.1 * _rng.normal(size=(64, 3)).astype(np.float32), "b2": np.zeros(3, np.float32)}
# min size 128 elements: w1 (256) and w2 (192) are split, b1 (64, divisible) and b2 are not
SPECS = {"w1": P(None, "data"), "b1": P(), "w2": P("data", None), "b2": P()}


def mlp_loss(params, batch, keys, frozen):
    hidden = jnp.tanh(batch["x"] @ params["w1"] + params["b1"])
    pred = hidden @ params["w2"] + params["b2"] + frozen["offset"]
    mse = jnp.mean((pred - batch["y"] + 1e-3 * example_noise(keys, batch["y"])) ** 2)
    return mse, {"mse": mse}


def config(fsdp=True, **train):
    return toy_config(fsdp=fsdp, fsdp_min_size=128, microbatch=8, **train)


def run(path, cfg, data=None, mesh=None):
    return train_and_evaluate(cfg, path, init_params=INIT, loss_fn=mlp_loss, frozen=FROZEN,
                              data_iterator=data or ToyData(16), mesh=mesh)


def assert_specs(state, specs):
    for name in ("params", "ema_params"):
        assert {k: v.sharding.spec for k, v in getattr(state, name).items()} == specs
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.shape == (4, 64)]
    assert len(moments) == 2 and all(x.sharding.spec == specs["w1"] for x in moments)


def assert_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_fsdp_splits_large_leaves_only():
    assert sharding.fsdp_spec((3, 3, 64, 128), 8, 0) == P(None, None, None, "data")
    assert sharding.fsdp_spec((3, 3, 60, 20), 8, 0) == P()  # nothing divisible by 8
    assert sharding.fsdp_spec((24, 4096), 8, 2 ** 20) == P()  # under min_size
    assert sharding.fsdp_spec((24, 4096), 1, 0) == P()


def test_fsdp_matches_one_device_and_data_parallel(tmp_path):
    fsdp = run(tmp_path / "fsdp", config(iterations=4, save_freq=100))
    data_parallel = run(tmp_path / "dp", config(fsdp=False, iterations=4, save_freq=100))
    one = run(tmp_path / "one", config(iterations=4, save_freq=100),
              mesh=sharding.make_mesh(jax.devices()[:1]))
    assert_specs(fsdp, SPECS)
    assert all(x.sharding.spec == P() for x in jax.tree.leaves(data_parallel))
    assert float(jnp.abs(fsdp.params["w1"] - INIT["w1"]).max()) > 1e-2  # it did train
    assert_close(fsdp, one)
    assert_close(fsdp, data_parallel)


@pytest.mark.parametrize("first", ["fsdp", "data_parallel"])
def test_fsdp_resume(tmp_path, first):
    """Killed at step 8 (checkpoint 5), resumed with FSDP: bit-exact after an FSDP run; a
    data-parallel checkpoint restores into the FSDP shardings."""
    straight = run(tmp_path / "straight", config(iterations=10, save_freq=5))
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", config(first == "fsdp", iterations=10, save_freq=5),
            data=ToyData(16, kill_at=7))
    resumed = run(tmp_path / "resumed", config(iterations=10, save_freq=5))
    assert_specs(resumed, SPECS)
    if first == "fsdp":
        for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert_close(straight, resumed)
