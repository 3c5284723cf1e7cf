"""bench/pod_compile.py: train.py's step compiled for a slice from shapes alone.

The TPU and GPU targets need libtpu or the CUDA plugin (by hand: docs/benchmarks.md); here
the same code compiles for the 8 simulated CPU devices, where FSDP must take 7/8 of every
split leaf of the state off each device and nothing else.
"""
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from bench.device_sections import config_of
from bench.pod_compile import compile_step
from bench.train_bench import train_parts
from resshift_jax import sharding
from resshift_jax.train.loop import state_layout


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
