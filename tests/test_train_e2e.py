"""train.py's `run` end to end on the fixtures' tiny ResShift: real data path, VQ, checkpoints."""
import jax
import numpy as np

from configs.tiny_test import get_config
from resshift_jax.train.checkpoints import Checkpointer
from train import run


def test_tiny_resshift_trains_and_checkpoints(tmp_path):
    config = get_config()
    state = run(config, str(tmp_path))
    assert int(state.step) == config.train.iterations
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == config.train.iterations
    assert list(tmp_path.glob("events.out.tfevents.*"))
