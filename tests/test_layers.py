"""Shared layers: the fused nearest-upsample + 3x3 conv against the plain composition."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resshift_jax.models.layers import UpsampleConv, conv, upsample_nearest


def _plain(params, x, features):
    layer = conv(features, 3, padding=1, dtype=jnp.float32, param_dtype=jnp.float32, name="c")
    return layer.apply(params, upsample_nearest(x))


@pytest.mark.parametrize("shape", [(2, 5, 7, 4, 6), (1, 8, 8, 16, 16), (1, 1, 1, 3, 2),
                                   (1, 16, 17, 8, 4)])
@pytest.mark.parametrize("min_positions", [0, 16 * 16])  # sub-pixel always / by default
def test_upsample_conv_equals_conv_of_upsampled(shape, min_positions):
    b, h, w, cin, cout = shape
    x = jax.random.normal(jax.random.key(1), (b, h, w, cin))
    layer = UpsampleConv(cout, min_positions=min_positions)
    params = layer.init(jax.random.key(0), x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias too
    got = layer.apply(params, x)
    assert got.shape == (b, 2 * h, 2 * w, cout)
    np.testing.assert_allclose(got, _plain(params, x, cout), atol=1e-5, rtol=1e-5)


def test_upsample_conv_gradient_equals_plain():
    x = jax.random.normal(jax.random.key(2), (1, 6, 5, 8))
    layer = UpsampleConv(4, min_positions=0)
    params = layer.init(jax.random.key(0), x)
    weights = jax.random.normal(jax.random.key(3), (1, 12, 10, 4))
    ours = jax.grad(lambda x: jnp.sum(layer.apply(params, x) * weights))(x)
    plain = jax.grad(lambda x: jnp.sum(_plain(params, x, 4) * weights))(x)
    np.testing.assert_allclose(ours, plain, atol=5e-6, rtol=0)


def test_upsample_conv_params_are_a_plain_conv():
    params = UpsampleConv(5).init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))["params"]
    assert jax.tree.map(jnp.shape, params) == {"kernel": (3, 3, 3, 5), "bias": (5,)}


def test_upsample_conv_bf16_close_to_float32():
    x = jax.random.normal(jax.random.key(4), (1, 8, 8, 16))
    params = UpsampleConv(16).init(jax.random.key(0), x)
    f32 = UpsampleConv(16, min_positions=0).apply(params, x)
    bf16 = UpsampleConv(16, min_positions=0, dtype=jnp.bfloat16).apply(params, x)
    assert bf16.dtype == jnp.bfloat16
    np.testing.assert_allclose(bf16.astype(jnp.float32), f32, atol=0.05 * float(jnp.abs(f32).max()))


def test_pointwise_conv_equals_1x1_conv():
    x = jax.random.normal(jax.random.key(5), (2, 6, 7, 12))
    layer = conv(9, 1, dtype=jnp.float32, param_dtype=jnp.float32, name="c")
    params = layer.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, params["params"]) == {"kernel": (1, 1, 12, 9), "bias": (9,)}
    params = jax.tree.map(lambda p: p + 0.1, params)
    plain = jax.lax.conv_general_dilated(x, params["params"]["kernel"], (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(layer.apply(params, x), plain + params["params"]["bias"],
                               atol=1e-5, rtol=1e-5)


def test_query_blocked_attention_equals_one_shot():
    from resshift_jax.models.attention import _attend, attention
    q, k, v = (jax.random.normal(jax.random.key(i), (3, 1024, 16)) for i in range(3))
    budget = 256 * 1024 * 4  # 256 query rows of float32 scores per block
    blocked = attention(q, k, v, jnp.float32, budget)
    assert "scan" in str(jax.make_jaxpr(lambda q: attention(q, k, v, jnp.float32, budget))(q))
    np.testing.assert_allclose(blocked, _attend(q, k, v, jnp.float32), atol=1e-6, rtol=1e-6)
    grads = [jax.grad(lambda q: jnp.sum(f(q) ** 2))(q) for f in (
        lambda q: attention(q, k, v, jnp.float32, budget),
        lambda q: _attend(q, k, v, jnp.float32))]
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5, rtol=1e-5)
