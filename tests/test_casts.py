"""Weights converted to the compute dtype once, before the reverse chain's loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.common import fake_params
from configs import tiny_test
from resshift_jax import builder
from resshift_jax.casts import cast_once, sole_convert_dtypes
from resshift_jax.sampling import make_restore_fn
from tests.jaxprs import equations


def _targets(fn, *shapes):
    args = [jnp.zeros(s, jnp.float32) for s in shapes]
    return sole_convert_dtypes(jax.make_jaxpr(fn)(*args).jaxpr, len(args))


def test_only_leaves_that_every_use_converts_to_one_dtype_are_cast():
    bf16 = jnp.dtype(jnp.bfloat16)
    assert _targets(lambda a: a.astype(jnp.bfloat16) * 2, (3,)) == [bf16]
    assert _targets(lambda a: a[None].reshape(3, 1).T.astype(jnp.bfloat16), (3,)) == [bf16]
    assert _targets(lambda a: jnp.broadcast_to(a, (4, 3)).astype(jnp.bfloat16), (3,)) == [bf16]
    # used in float32 too, two dtypes, an arithmetic op before the convert, returned, unused:
    assert _targets(lambda a: a.astype(jnp.bfloat16).sum() + a.sum(), (3,)) == [None]
    assert _targets(lambda a: (a.astype(jnp.bfloat16), a.astype(jnp.float16)), (3,)) == [None]
    assert _targets(lambda a: (a + 1).astype(jnp.bfloat16), (3,)) == [None]
    assert _targets(lambda a: (a.astype(jnp.bfloat16), a), (3,)) == [None]
    assert _targets(lambda a, b: b.astype(jnp.bfloat16), (3,), (3,)) == [None, bf16]


@pytest.fixture(scope="module")
def tiny_bf16():
    restorer = builder.restorer_from_config(tiny_test.get_config(), jnp.bfloat16)
    return restorer, fake_params(restorer)


def test_cast_weights_give_the_bf16_unet_bit_for_bit_its_output(tiny_bf16):
    restorer, params = tiny_bf16
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    lq = jax.random.uniform(jax.random.key(2), (2, 32, 32, 3), minval=-1, maxval=1)
    t = jnp.array([3, 1])
    cast = cast_once(restorer.denoise, params["unet"], x, t, lq, None)
    dtypes = {jnp.dtype(leaf.dtype).name for leaf in jax.tree.leaves(cast)}
    assert dtypes == {"bfloat16", "float32"}  # kernels cast; the norms' parameters kept
    for path, leaf in jax.tree_util.tree_leaves_with_path(cast):
        if "norm" in jax.tree_util.keystr(path):
            assert leaf.dtype == jnp.float32, jax.tree_util.keystr(path)
    denoise = jax.jit(restorer.denoise)
    np.testing.assert_array_equal(denoise(cast, x, t, lq, None),
                                  denoise(params["unet"], x, t, lq, None))


def _loops(jaxpr):
    return [e for e in equations(jaxpr) if e.primitive.name == "scan"]


def test_the_bf16_chain_converts_no_weight_inside_its_loop(tiny_bf16):
    """Before, each kernel's float32 -> bf16 convert ran in the scan body, once per step (on
    an H200 compiled here: 200 of the v3 UNet step's 957 kernels)."""
    restorer, params = tiny_bf16
    lq = jnp.zeros((1, 32, 32, 3))
    jaxpr = make_restore_fn(restorer).trace(params, lq, None, jax.random.key(0)).jaxpr
    (loop,) = _loops(jaxpr)
    body = loop.params["jaxpr"].jaxpr
    # the body's inputs but the images (LQ, latents, noise: the tiny model's latent is LQ-sized)
    weights = {v for v in body.invars if v.aval.shape != lq.shape}
    kernels = [e for e in equations(body) if e.primitive.name in ("conv_general_dilated",
                                                                  "dot_general")]
    assert kernels
    bf16_weights = [v for v in weights if v.aval.dtype == jnp.bfloat16]
    kernel_leaves = [p for p, _ in jax.tree_util.tree_leaves_with_path(params["unet"])
                     if "kernel" in jax.tree_util.keystr(p)]
    assert len(bf16_weights) >= len(kernel_leaves) // 2
    converted = [e for e in body.eqns if e.primitive.name == "convert_element_type"
                 and e.params["new_dtype"] == jnp.bfloat16 and e.invars[0] in weights]
    assert not converted, [str(e) for e in converted[:3]]
