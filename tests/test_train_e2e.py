"""train.py's `run` end to end on the fixtures' tiny ResShift: real data path, VQ, checkpoints;
and train.py refusing the workdir of another experiment."""
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from configs.tiny_test import get_config
from resshift_jax.train.checkpoints import Checkpointer, check_experiment
from train import run


def test_tiny_resshift_trains_and_checkpoints(tmp_path):
    config = get_config()
    state = run(config, str(tmp_path))
    assert int(state.step) == config.train.iterations
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == config.train.iterations
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_train_py_refuses_the_workdir_of_another_experiment(tmp_path):
    """The same network with another schedule and seed: status 2, one line naming the fields,
    before the workdir's checkpoint (a stand-in, never read) is touched."""
    check_experiment(tmp_path, get_config(), resuming=False)
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    checkpointer.save(2, {"x": jnp.zeros(1)}, {}, force=True)
    checkpointer.wait()
    checkpointer.close()
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "train.py", "--config", "configs/tiny_test.py", "--workdir",
         str(tmp_path), "--config.diffusion.steps=15", "--config.train.seed=7"],
        cwd=root, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1"))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and errors == [
        f"error: {tmp_path}/config.json: this workdir's run is another experiment: "
        "diffusion.steps is 4 there, 15 here; train.seed is 0 there, 7 here; train with its "
        "config, give another --workdir, or edit config.json to resume deliberately"], done.stderr
    assert "Traceback" not in done.stderr
    assert Checkpointer(tmp_path / "checkpoints").manager.all_steps() == [2]
