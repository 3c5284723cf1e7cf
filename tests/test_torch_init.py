"""Training from scratch starts from the reference's initialisation, not Flax's defaults."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs.demo import get_config
from resshift_jax.builder import restorer_from_config
from resshift_jax.models.torch_init import torch_default_init
from resshift_jax.models.unet import example_inputs, init_params
from resshift_jax.train.experiment import SetupError, init_unet_params


def _layers(params):
    flat = traverse_util.flatten_dict(jax.device_get(params))
    return {path[:-1]: (flat[path], flat.get(path[:-1] + ("bias",)))
            for path in flat if path[-1] == "kernel"}


@pytest.fixture(scope="module")
def demo():
    """A small pixel-space UNet with every kind of layer: ResBlocks, Swin, up/downsampling."""
    config = get_config()
    config.model.update(dict(image_size=16, lq_size=16, channel_mult=(1, 2), swin_depth=1,
                             attention_resolutions=(8,)))
    return config, restorer_from_config(config, jnp.float32)


def test_fresh_unet_draws_as_torch_and_zeroes_each_resblocks_last_conv(demo):
    config, restorer = demo
    config.train.init = "reference"
    params = init_unet_params(config, restorer, jax.random.key(0))
    layers = _layers(params)
    zeroed = [p for p in layers if p[-1] == "out_layers_3"]
    assert len(zeroed) >= 8
    drawn = 0
    for path, (kernel, bias) in layers.items():
        if path in zeroed:
            assert not kernel.any() and not bias.any(), path
            continue
        bound = 1 / math.sqrt(math.prod(kernel.shape[:-1]))
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound, path
        if kernel.size >= 4096:  # U(-b, b) has std b / sqrt(3); lecun_normal's is b
            assert abs(kernel.std() / (bound / math.sqrt(3)) - 1) < 0.1, path
            assert np.abs(bias).max() > 0.5 * bound, path
            drawn += 1
    assert drawn >= 10
    flat = traverse_util.flatten_dict(jax.device_get(params))
    for path, leaf in flat.items():
        if path[-2:] == ("norm", "scale"):
            np.testing.assert_array_equal(leaf, 1.0)
        if path[-1] == "relative_position_bias_table":
            assert 0.01 < leaf.std() < 0.03 and np.abs(leaf).max() < 0.1


def test_redraw_keeps_shapes_dtypes_and_other_leaves_and_depends_on_the_key():
    params = {"conv": {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.zeros((8,))},
              "dense": {"kernel": jnp.ones((16, 2), jnp.bfloat16)},
              "norm": {"scale": jnp.full((8,), 2.0), "bias": jnp.full((8,), 3.0)}}
    a = torch_default_init(params, jax.random.key(0), zeroed=lambda p: p == ("dense",))
    b = torch_default_init(params, jax.random.key(1))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), a) == jax.tree.map(
        lambda x: (x.shape, x.dtype), params)
    assert not np.asarray(a["dense"]["kernel"]).any()
    np.testing.assert_array_equal(a["norm"]["scale"], 2.0)
    np.testing.assert_array_equal(a["norm"]["bias"], 3.0)
    assert np.abs(a["conv"]["kernel"]).max() <= 1 / 6 and np.asarray(a["conv"]["bias"]).any()
    assert not np.array_equal(a["conv"]["kernel"], b["conv"]["kernel"])


def test_train_init_flax_keeps_flax_defaults_and_a_bad_name_is_one_line(demo):
    config, restorer = demo
    config.train.init = "flax"
    params = init_unet_params(config, restorer, jax.random.key(0))
    unet = restorer.unet
    jitted = jax.jit(unet.init)(jax.random.key(0), *example_inputs(unet))["params"]
    assert jax.tree.structure(params) == jax.tree.structure(jitted)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(jitted)):  # -O1 on CPUs: same bits
        np.testing.assert_array_equal(a, b)
    layers = _layers(params)
    assert all(kernel.any() for path, (kernel, _) in layers.items() if path[-1] == "out_layers_3")
    assert not any(bias.any() for _, bias in layers.values() if bias is not None)
    config.train.init = "torch"
    with pytest.raises(SetupError, match="train.init: 'torch' is not one of reference, flax"):
        init_unet_params(config, restorer, jax.random.key(0))


def test_fast_init_is_the_jitted_composition_bit_for_bit(demo):
    """`init_params` (grouped draws, host assembly, a lighter CPU compile) gives exactly what
    jitting Flax's init followed by `torch_default_init` gives."""
    _, restorer = demo
    unet, key = restorer.unet, jax.random.key(7)

    def composed(key):
        init_key, draw_key = jax.random.split(key)
        params = unet.init(init_key, *example_inputs(unet))["params"]
        return torch_default_init(params, draw_key, zeroed=lambda p: p[-1] == "out_layers_3")

    fast, slow = init_params(unet, key), jax.device_get(jax.jit(composed)(key))
    assert jax.tree.structure(fast) == jax.tree.structure(slow)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
