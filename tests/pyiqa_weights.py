"""Reproducible random weights for pyiqa's networks (numpy only), shared by
tools/make_pyiqa_fixtures.py (which loads them into pyiqa) and the tests (which load them into
ours): a fixture then needs only the state dict's names and shapes, not megabytes of floats."""
import numpy as np


def random_state_dict(names_shapes, seed: int) -> dict:
    """{name: float32 array}; norm scales near 1, running variances positive, fan-in scaled."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in names_shapes:
        shape = tuple(int(s) for s in shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[name] = np.zeros(shape, np.int64)
        elif leaf == "running_var":
            out[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif leaf == "running_mean" or leaf == "bias" or len(shape) <= 1:
            scale = 1.0 if (leaf == "weight" and len(shape) == 1) else 0.0
            out[name] = np.asarray(scale + 0.1 * rng.standard_normal(shape), np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            out[name] = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
    return out
