"""The bf16 compute path: what stays float32, gradient sums, and what bf16 costs."""
import math

import jax
import jax.numpy as jnp
import pytest

from configs import tiny_test
from resshift_jax import builder, parity
from resshift_jax.convert.lpips import lpips_params_from_torch
from resshift_jax.models.layers import Dense, UpsampleConv, conv
from resshift_jax.models.lpips import LPIPS
from resshift_jax.sampling import restore
from resshift_jax.train.objective import make_loss_fn
from tests.jaxprs import equations
from tests.lpips_weights import random_lpips_state_dicts

PRECISION_SENSITIVE = {"exp", "exp2", "log", "log1p", "rsqrt", "sqrt", "sin", "cos", "pow",
                       "reduce_sum", "reduce_max", "reduce_min", "argmin", "argmax", "cumsum"}
REDUCTIONS = {"reduce_sum", "reduce_max", "reduce_min", "argmin", "argmax", "cumsum"}


def _on_bf16(eqn) -> bool:
    return any(getattr(v.aval, "dtype", None) == jnp.bfloat16 for v in eqn.invars)


def _where(eqn) -> str:
    return f"{eqn.primitive.name} at {eqn.source_info.name_stack}"


def _bf16_sensitive_ops(eqns) -> list:
    """Where a precision-sensitive primitive takes a bf16 operand."""
    return [_where(e) for e in eqns if e.primitive.name in PRECISION_SENSITIVE and _on_bf16(e)]


def _tiny_bf16():
    return builder.build_restorer(tiny_test.get_config(), dtype=jnp.bfloat16)


def test_bf16_chain_keeps_norms_softmax_embeddings_and_quantizer_in_float32():
    """The whole compiled chain in bf16 (encode, 4 UNet steps under scan, quantize, decode):
    no exp, log, sqrt, sin/cos or reduction takes a bf16 operand, and the chain state
    (the scan's carry and stacked samples) is float32."""
    restorer, params = _tiny_bf16()
    jaxpr = jax.make_jaxpr(lambda p, lq: restore(restorer, p, lq, key=jax.random.key(0)))(
        params, jnp.zeros((1, 32, 32, 3))).jaxpr
    eqns = list(equations(jaxpr))
    assert any(e.primitive.name == "conv_general_dilated" and _on_bf16(e) for e in eqns)
    bad = _bf16_sensitive_ops(eqns)
    assert not bad, bad[:5]
    scans = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
    assert scans and all(v.aval.dtype == jnp.float32 for e in scans for v in e.outvars)


def test_bf16_training_gradient_sums_accumulate_in_float32():
    """The bf16 training loss (MSE + LPIPS) and its gradient: no sum over more than 4 terms
    runs in bf16. Each bias's gradient sums batch x height x width terms, the scale/shift
    of the timestep embedding height x width: in bf16 those saturate (next test)."""
    restorer, params = _tiny_bf16()
    frozen = {"vq": params["vq"], "lpips": lpips_params_from_torch(*random_lpips_state_dicts(0))}
    loss_fn = make_loss_fn(restorer, mse_coef=1.0, lpips_coef=1.0,
                           lpips_module=LPIPS(dtype=jnp.bfloat16))
    batch = {"hq": jnp.zeros((2, 128, 128, 3)), "lq": jnp.zeros((2, 32, 32, 3))}
    keys = jax.random.split(jax.random.key(7), 2)
    forward = jax.make_jaxpr(lambda p: loss_fn(p, batch, keys, frozen)[0])(params["unet"])
    bad = _bf16_sensitive_ops(equations(forward.jaxpr))
    assert not bad, bad[:5]
    grad = jax.make_jaxpr(jax.grad(lambda p: loss_fn(p, batch, keys, frozen)[0]))(params["unet"])
    long_sums = []
    for e in equations(grad.jaxpr):
        if e.primitive.name in REDUCTIONS and _on_bf16(e):
            terms = math.prod(e.invars[0].aval.shape[a] for a in e.params["axes"])
            if terms > 4:  # the 2x2 sums of nearest upsampling's transpose are exact enough
                long_sums.append(f"{_where(e)} over {terms}")
    assert not long_sums, long_sums[:5]


@pytest.mark.parametrize("layer", ["conv3x3", "conv1x1", "dense", "upsample_conv"])
def test_bf16_bias_gradient_over_32768_positions_is_exact_to_float32(layer):
    """A bias gradient sums every position's cotangent: with a bf16 accumulator XLA:CPU got
    these 50% wrong (0.73 at 65,536 terms); summed in float32 they match to 1e-3."""
    x = jax.random.normal(jax.random.key(0), (8, 64, 64, 16))
    make = {"conv3x3": lambda d: conv(16, 3, padding=1, dtype=d, param_dtype=jnp.float32, name="c"),
            "conv1x1": lambda d: conv(16, 1, dtype=d, param_dtype=jnp.float32, name="c"),
            "dense": lambda d: Dense(16, dtype=d),
            "upsample_conv": lambda d: UpsampleConv(16, dtype=d)}[layer]
    if layer == "upsample_conv":
        x = x[:, :32, :32]
    weights = 0.01 * jax.random.normal(jax.random.key(1), (8, 64, 64, 16)) + 0.002

    def bias_grad(dtype):
        module = make(dtype)
        params = module.init(jax.random.key(2), x)
        loss = lambda p, x, w: jnp.sum(module.apply(p, x).astype(jnp.float32) * w)  # noqa: E731
        return jax.jit(jax.grad(loss))(params, x, weights)["params"]["bias"]
    f32, bf16 = bias_grad(jnp.float32), bias_grad(jnp.bfloat16)
    assert bf16.dtype == jnp.float32
    assert float(jnp.linalg.norm(bf16 - f32) / jnp.linalg.norm(f32)) < 1e-3


def test_bf16_costs_stay_at_bf16_precision(parity_dir):
    """bf16 compute costs its 8-bit mantissa's error per network, no more, and is applied.
    Measured 2026-12-07 (docs/benchmarks.md), highest of JAX 0.10.2 and 0.12.1: UNet 0.017 /
    0.021, VQ encoder 0.013, decoder 0.034, loss 1.2e-3; bounds about twice that. A single
    norm or softmax moved to bf16 stays within the versions' spread (seen: loss 1.2-2.8e-3),
    so this guards gross errors (overflow, a wrong cast order), not those."""
    rows = parity.run_fixtures(parity_dir, dtype="bfloat16",
                               only=["unet_sr_tiny", "unet_inpaint_tiny", "vq_f4_tiny",
                                     "train_loss_tiny"])
    rel = {(r.fixture, r.array): r.rel for r in rows}
    bounds = {("unet_sr_tiny", "out"): 0.035, ("unet_inpaint_tiny", "out"): 0.04,
              ("vq_f4_tiny", "latent"): 0.025, ("vq_f4_tiny", "decoded_unquantized"): 0.065,
              ("train_loss_tiny", "pred_zstart"): 0.055, ("train_loss_tiny", "mse"): 2.5e-3}
    for key, bound in bounds.items():
        assert 1e-4 < rel[key] < bound, (key, rel[key])
