"""bench/pod_compile.py: train.py's step compiled for a slice from shapes alone.

The TPU and GPU targets need libtpu or the CUDA plugin (by hand: docs/benchmarks.md); here
the same code compiles for the 8 simulated CPU devices, where FSDP must take 7/8 of every
split leaf of the state off each device and nothing else, and the gradients must cross the
devices once per step, in float32.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from bench.device_sections import config_of
from bench.pod_compile import compile_step, trace_step
from bench.train_bench import train_parts
from resshift_jax import sharding
from resshift_jax.train.loop import state_layout
from tests.jaxprs import equations_with_loop_depth


def test_fsdp_takes_the_split_state_off_each_device():
    devices = jax.devices()
    assert len(devices) == 8
    config = config_of("tiny_test", dry_run=True)
    config.train.update(batch=16, microbatch=1, fsdp_min_size=2 ** 10)
    dp = compile_step(config, devices, target="cpu", lpips_net=None, dtype=np.float32)
    config.train.fsdp = True
    fsdp = compile_step(config, devices, target="cpu", lpips_net=None, dtype=np.float32)
    assert (dp.devices, dp.batch, dp.microbatch, dp.slices) == (8, 16, 1, 2)
    assert not dp.fsdp and fsdp.fsdp

    _, optimizer, params = (lambda r, loss, opt, p, frozen: (r, opt, p))(
        *train_parts(config, np.float32, None))
    _, state, shardings = state_layout(config.train, params, optimizer,
                                       sharding.make_mesh(devices))
    split = sum(leaf.size * leaf.dtype.itemsize
                for leaf, s in zip(jax.tree.leaves(state), jax.tree.leaves(shardings))
                if s.spec != P())
    saved = (dp.argument_gib - fsdp.argument_gib) * 2 ** 30
    assert split > 0 and saved == pytest.approx(split * 7 / 8, rel=1e-6), (saved, split)


def _collective_computations(hlo: str) -> set:
    """The compiled HLO computations holding a cross-device collective ("ENTRY" for the
    program's top level; a loop body's collective runs once per iteration)."""
    found, computation = set(), None
    for line in hlo.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            computation = "ENTRY" if line.startswith("ENTRY") else line.split()[0]
        elif re.search(r" (all-reduce|reduce-scatter|all-gather)(-start)?\(", line):
            found.add(computation)
    return found


@pytest.mark.parametrize("fsdp", [False, True])
def test_bf16_step_crosses_devices_once_per_step_in_float32(fsdp):
    """The bf16 step with 2 microbatches per device: every gradient is reduced over the
    devices explicitly (shard_map), in float32, outside the microbatch loop, and the
    compiled program runs none of its collectives in a loop. Left to XLA's partitioner, the
    H200 program all-reduced conv kernels' gradients in bf16 and some inside the loop, and
    this CPU's program all-reduced every gradient inside the loop, once per microbatch."""
    config = config_of("tiny_test", dry_run=True)
    config.train.update(batch=16, microbatch=1, fsdp=fsdp, fsdp_min_size=2 ** 10)
    traced, slices = trace_step(config, jax.devices(), lpips_net=None, dtype=jnp.bfloat16)
    assert slices == 2
    eqns = list(equations_with_loop_depth(traced.jaxpr.jaxpr))
    assert any(e.primitive.name == "scan" for e, _ in eqns)
    reductions = [(e, depth) for e, depth in eqns if e.primitive.name in ("psum", "reduce_scatter")]
    assert reductions
    assert {str(v.aval.dtype) for e, _ in reductions for v in e.invars} == {"float32"}
    assert {depth for _, depth in reductions} == {0}
    assert any(e.primitive.name == "reduce_scatter" for e, _ in reductions) == fsdp
    assert _collective_computations(traced.lower().compile().as_text()) == {"ENTRY"}
