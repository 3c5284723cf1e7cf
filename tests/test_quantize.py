"""The quantizer's nearest codes in row blocks: balanced plans, the one-shot result, the
straight-through gradient, and each platform's plan in one lowered program."""
import jax
import jax.numpy as jnp
import numpy as np
from jax import export

from configs.common import VQ_F4
from resshift_jax.convert.loading import build_model
from resshift_jax.models.attention import ACCELERATOR_BUDGET, CPU_BUDGET
from resshift_jax.models.quantize import _argmin_distance, block_rows, nearest_codes


def test_block_rows():
    assert block_rows(1, 4096, 8192, ACCELERATOR_BUDGET) == 4096  # one block
    assert block_rows(1, 262144, 8192, ACCELERATOR_BUDGET) == 32768  # 1 GiB: 8 blocks
    assert block_rows(64, 4096, 8192, ACCELERATOR_BUDGET) == 512  # 64 x 512 rows: 1 GiB
    assert block_rows(1, 4096, 8192, CPU_BUDGET) == 256  # 8 MiB
    assert block_rows(1, 300, 8192, CPU_BUDGET) == 150  # balanced: two blocks of 150, not 256 + 44
    assert block_rows(1, 4096, 1 << 20, CPU_BUDGET) == 128  # never thinner than MIN_ROWS


def test_blocks_give_the_one_shot_indices_ties_included():
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(512, 3)).astype(np.float32)
    codebook[7] = codebook[3]  # a tie: the first index wins, whatever the block
    flat = np.concatenate([rng.normal(size=(997, 3)), codebook[[3, 7]]]).astype(np.float32)
    one_shot = np.asarray(_argmin_distance(flat, codebook))
    for batch in (1, 3):  # 999 positions: 1 x 999 or 3 x 333
        for budget in (None, 4 * 512 * 128, 4 * 512 * 300, 1 << 30):
            got = jax.jit(nearest_codes, static_argnums=2)(flat.reshape(batch, -1, 3), codebook,
                                                            budget)
            np.testing.assert_array_equal(np.asarray(got).reshape(-1), one_shot)
    assert one_shot[-2] == one_shot[-1] == 3


def test_blocked_quantize_keeps_the_straight_through_gradient():
    small = dict(VQ_F4, n_embed=64,
                 ddconfig=dict(VQ_F4["ddconfig"], ch=32, ch_mult=(1,), num_res_blocks=1))
    vq = build_model("vq", small).clone(block_budget=4 * 64 * 128)
    z = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))  # 512 positions: 4 blocks
    params = vq.init(jax.random.key(1), jnp.zeros((1, 8, 8, 3)))

    def total(z):
        return jnp.sum(vq.apply(params, z, method="quantize")[0] * jnp.arange(3.0))
    np.testing.assert_array_equal(jax.grad(total)(z), jnp.broadcast_to(jnp.arange(3.0), z.shape))
    _, indices = vq.apply(params, z, method="quantize")
    codebook = params["params"]["quantize_embedding"]["embedding"]
    np.testing.assert_array_equal(indices.reshape(-1),
                                  _argmin_distance(z.reshape(-1, 3), codebook))


def test_each_platform_lowers_its_own_plan():
    flat = jax.ShapeDtypeStruct((1, 262144, 3), jnp.float32)
    codebook = jax.ShapeDtypeStruct((8192, 3), jnp.float32)
    text = {p: export.export(jax.jit(nearest_codes), platforms=[p])(flat, codebook).mlir_module()
            for p in ("cpu", "cuda")}
    assert "256x8192xf32>" in text["cpu"] and "32768x8192xf32>" in text["cuda"]
    assert not any("262144x8192xf32>" in t for t in text.values())
