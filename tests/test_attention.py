"""Memory-bounded full attention: block plans, exactness, per-platform lowering, 2048^2 memory."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from bench.common import largest_array_bytes
from configs.common import VQ_F4
from resshift_jax.convert.loading import build_model
from resshift_jax.models.attention import (ACCELERATOR_BUDGET, CPU_BUDGET, _attend, attention,
                                           blocked_attention, plan)

GiB = 1 << 30


def test_plans():
    """Query rows per block, the batch whole in every block."""
    assert plan(1, 4096, CPU_BUDGET) == 512  # 8 MiB: 512 rows of 4096
    assert plan(64, 4096, ACCELERATOR_BUDGET) == 1024  # 64 x 1024 rows of 4096: 1 GiB
    assert plan(17, 4096, ACCELERATOR_BUDGET) == 2048  # balanced: two blocks
    assert plan(4, 4096, ACCELERATOR_BUDGET) == 4096  # one shot
    assert plan(1, 262144, ACCELERATOR_BUDGET) == 1024  # the 2048 x 2048 tile
    assert plan(1, 262144, CPU_BUDGET) == 128  # never thinner than MIN_ROWS
    assert plan(64, 4096, CPU_BUDGET) == 128  # MIN_ROWS of each example (128 MiB)
    assert plan(1, 4000, 4 * 4000 * 900) == 800  # 5 blocks of 800, not 4 x 900 + 400


@pytest.mark.parametrize("shape,rows", [
    ((5, 64, 8), 16),  # 4 blocks of every example's rows
    ((2, 99, 8), 25),  # query rows padded to 100
    ((1, 64, 8), 64),  # one shot
])
def test_blocked_equals_one_shot(shape, rows):
    q, k, v = (jax.random.normal(jax.random.key(i), shape) for i in range(3))
    one_shot = _attend(q, k, v, jnp.float32)
    got = blocked_attention(q, k, v, jnp.float32, rows)
    assert got.shape == one_shot.shape
    np.testing.assert_allclose(got, one_shot, atol=1e-6, rtol=1e-6)
    weights = jax.random.normal(jax.random.key(9), shape)

    def grad_of(f):
        return jax.jit(jax.grad(lambda *qkv: jnp.sum(f(*qkv) * weights), (0, 1, 2)))(q, k, v)
    grads = [grad_of(lambda q, k, v: blocked_attention(q, k, v, jnp.float32, rows)),
             grad_of(lambda q, k, v: _attend(q, k, v, jnp.float32))]
    for ours, ref in zip(*grads):
        np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-5)


def test_bf16_scores_and_softmax_in_float32():
    # bf16-exact inputs, so the error is the computation's; logits of a few units, as the
    # VQ's: with bf16 scores (rounded before the softmax) the max error here is 0.32
    q, k, v = (jax.random.normal(jax.random.key(i), (1, 256, 64)).astype(jnp.bfloat16) * 3
               for i in range(3))
    f32 = _attend(*(x.astype(jnp.float32) for x in (q, k, v)), jnp.float32)
    bf16 = blocked_attention(q, k, v, jnp.bfloat16, 128)
    assert bf16.dtype == jnp.bfloat16
    np.testing.assert_allclose(bf16.astype(jnp.float32), f32, atol=0.1)  # 0.045


def test_each_platform_gets_its_plan_in_one_program():
    s = jax.ShapeDtypeStruct((64, 4096, 512), jnp.float32)
    fn = jax.jit(lambda q, k, v: attention(q, k, v, jnp.float32))
    texts = {p: export.export(fn, platforms=[p])(s, s, s).mlir_module() for p in ("cpu", "cuda")}
    assert "tensor<64x128x4096xf32>" in texts["cpu"] and "64x1024x4096" not in texts["cpu"]
    assert "tensor<64x1024x4096xf32>" in texts["cuda"] and "64x128x4096" not in texts["cuda"]
    both = export.export(fn, platforms=["cpu", "cuda", "tpu"])(s, s, s)
    assert both.platforms == ("cpu", "cuda", "tpu")
    assert "tensor<64x128x4096xf32>" in both.mlir_module()
    assert "tensor<64x1024x4096xf32>" in both.mlir_module()
    # a budget given explicitly is the plan on every platform
    q = jnp.zeros((2, 1024, 8))
    jaxpr = str(jax.make_jaxpr(lambda q: attention(q, q, q, jnp.float32, CPU_BUDGET))(q))
    assert "platform_index" not in jaxpr


def test_2048_tile_attention_is_memory_bounded():
    """N = 262,144 tokens, C = 512: one-shot scores would be 256 GiB."""
    s = jax.ShapeDtypeStruct((1, 262144, 512), jnp.float32)
    fn = jax.jit(lambda q, k, v: attention(q, k, v, jnp.float32))
    cuda = export.export(fn, platforms=["cuda"])(s, s, s).mlir_module()
    assert largest_array_bytes(cuda) <= ACCELERATOR_BUDGET
    forced = jax.jit(lambda q, k, v: attention(q, k, v, jnp.float32, ACCELERATOR_BUDGET))
    memory = forced.lower(s, s, s).compile().memory_analysis()
    assert memory.temp_size_in_bytes < 4 * GiB  # ~2 GiB: one block's scores and weights


def test_vq_f4_2048_tile_encode_decode_memory():
    """The released f4 autoencoder on a 2048 x 2048 tile, the accelerators' attention plan,
    compiled (not run) on CPU: temporaries stay within 8 GiB (encode) and 16 GiB (decode,
    whose 2048 x 2048 x 256 float32 activations alone are 4 GiB each)."""
    vq = build_model("vq", VQ_F4).clone(block_budget=ACCELERATOR_BUDGET)
    params = jax.eval_shape(vq.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    image = jax.ShapeDtypeStruct((1, 2048, 2048, 3), jnp.float32)
    latent = jax.ShapeDtypeStruct((1, 512, 512, 3), jnp.float32)
    encode = jax.jit(lambda p, x: vq.apply({"params": p}, x, method="encode"))
    decode = jax.jit(lambda p, z: vq.apply({"params": p}, z, method="decode"))
    assert encode.lower(params, image).compile().memory_analysis().temp_size_in_bytes < 8 * GiB
    assert decode.lower(params, latent).compile().memory_analysis().temp_size_in_bytes < 16 * GiB
    # the platform's own plan (no explicit budget), lowered for CUDA: no score matrix
    default = build_model("vq", VQ_F4)
    cuda = export.export(jax.jit(lambda p, z: default.apply({"params": p}, z, method="decode")),
                         platforms=["cuda"])(params, latent).mlir_module()
    assert "262144x262144" not in cuda and "x1024x262144xf32>" in cuda
    assert "262144x8192xf32>" not in cuda and "32768x8192xf32>" in cuda  # quantizer blocks
