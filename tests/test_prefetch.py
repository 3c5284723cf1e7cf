"""DevicePrefetcher: sharded global batches built ahead, consumed position, thread errors."""
import functools
import time

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from resshift_jax import sharding
from resshift_jax.train.prefetch import DevicePrefetcher
from tests.test_train import ToyData


def to_device():
    return functools.partial(sharding.global_batch, mesh=sharding.make_mesh())


def test_runs_ahead_but_reports_the_consumed_position():
    data = ToyData(16)
    batches = DevicePrefetcher(data, to_device(), depth=3)
    first = next(batches)
    deadline = time.monotonic() + 30
    while data.index < 1 + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert data.index >= 4 and data.threads == {"device_prefetch"}
    assert batches.get_state() == {"index": 1}
    assert first["x"].shape == (16, 4) and first["x"].sharding.spec == P("data")
    assert len(first["x"].addressable_shards) == 8
    expected = ToyData(16)
    np.testing.assert_array_equal(first["x"], next(expected)["x"])
    np.testing.assert_array_equal(next(batches)["y"], next(expected)["y"])
    assert batches.get_state() == {"index": 2}
    batches.close()
    assert data.get_state() == {"index": 2}  # back at the next batch to train on


class FailingData(ToyData):
    def __next__(self):
        if self.index == 1:
            raise OSError("disk went away")
        return super().__next__()


def test_error_in_the_thread_is_raised_by_next():
    batches = DevicePrefetcher(FailingData(16), to_device(), depth=2)
    next(batches)
    for _ in range(2):  # raised again, never a hang
        with pytest.raises(OSError, match="disk went away"):
            next(batches)
    batches.close()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="device_prefetch=0"):
        DevicePrefetcher(ToyData(16), to_device(), depth=0)
