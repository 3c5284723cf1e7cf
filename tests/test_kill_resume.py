"""Training under faults: a folder with a tenth of its files bad trains and counts them, and a
run SIGKILLed at seeded random moments (one of them inside an async checkpoint save)
resumes and ends bit-equal to an uninterrupted run.

Every run is a `train.py` subprocess on a pixel-space cut of configs/tiny_test.py (one
device, batch 4, 8 steps, a checkpoint every 2), sharing one persistent XLA cache so only
the first run compiles.
"""
import importlib.util
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from resshift_jax.data.pipeline import make_train_iterator
from tests.awkward_files import png_claiming

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 8
CONFIG = '''
from configs.tiny_test import get_config as tiny_config


def get_config():
    c = tiny_config()
    c.model.update(dict(channel_mult=(1, 2), num_res_blocks=(1, 1), attention_resolutions=(),
                        image_size=32, lq_size=32, swin_depth=1, mlp_ratio=1))
    c.autoencoder = None
    c.diffusion.update(dict(latent_flag=False))
    c.data.train.update(dict(gt_size=32, crop_pad_size=32,
                             sources=({{"type": "folder", "root": {root!r}}},)))
    c.train.update(dict(batch=4, microbatch=4, iterations={steps}, save_freq=2,
                        keep_checkpoints=2, log_freq=1))
    return c
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("kill")
    data = base / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(18):
        h, w = rng.integers(20, 60, 2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(data / f"img{i:02d}.png")
    good = (data / "img00.png").read_bytes()
    (data / "truncated.png").write_bytes(good[: len(good) // 2])  # 2 of 20 files are bad
    (data / "absurd.png").write_bytes(png_claiming(100_000, 100_000))
    config = base / "kill_config.py"
    config.write_text(CONFIG.format(root=str(data), steps=STEPS))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(base / "xla_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return base, config, env


def _launch(config, workdir, env, log):
    """A train.py run writing its output to the file `log`."""
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--workdir", str(workdir)]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _finish(proc, log) -> str:
    proc.wait(timeout=900)
    text = pathlib.Path(log).read_text(errors="backslashreplace")
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    return text


def _entries(workdir):
    folder = workdir / "checkpoints"
    return [p.name for p in folder.iterdir()] if folder.is_dir() else []


def _saved_steps(workdir):
    return {int(n) for n in _entries(workdir) if n.isdigit()}


def _saving_steps(workdir):
    """Steps whose checkpoint is being written (orbax's `STEP.orbax-checkpoint-tmp*`)."""
    return {int(n.split(".")[0]) for n in _entries(workdir) if "tmp" in n and n.split(".")[0].isdigit()}


def _after(first, delay: float):
    """A condition that holds from `delay` seconds after `first()` first held."""
    since = []

    def condition():
        if not since and first():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() >= since[0] + delay
    return condition


def _kill_when(proc, condition, timeout=600):
    """SIGKILL `proc` as soon as `condition()` holds (polled every millisecond)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before its kill moment"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _final(workdir):
    """(step, state tree, data state) of the latest checkpoint in `workdir`."""
    with ocp.CheckpointManager(workdir / "checkpoints") as manager:
        step = manager.latest_step()
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore()))
    return step, jax.device_get(restored.state), restored.data


def _expected_data_state(config):
    """The data position and skip count after STEPS batches, from the pipeline itself."""
    spec = importlib.util.spec_from_file_location("kill_config", config)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    data = make_train_iterator(c.data.train, per_host_batch=int(c.train.batch),
                               seed=int(c.train.seed), sf=int(c.sf))
    for _ in range(STEPS):
        next(data)
    return data.get_state()


def test_corrupt_tenth_trains_and_sigkill_resume_is_bit_exact(setup):
    base, config, env = setup
    log = _finish(_launch(config, base / "straight", env, base / "straight.log"), base / "straight.log")
    for name in ("truncated.png", "absurd.png"):  # each bad file named once, in one line
        assert sum(f"training data: skipped {base / 'data' / name}: " in ln
                   for ln in log.splitlines()) == 1
    step, reference, data_state = _final(base / "straight")
    assert step == STEPS and data_state == _expected_data_state(config)
    assert data_state["skipped"][0] >= 2  # the whole first epoch was read: both bad files met
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(reference["params"]))

    rng = np.random.default_rng(15)
    resumed, run_log = base / "resumed", base / "resumed.log"
    save_at = int(rng.choice([2, 4]))  # 1: inside the async save of this step (or a later one)
    _kill_when(_launch(config, resumed, env, run_log),
               lambda: any(s >= save_at for s in _saving_steps(resumed)))
    caught = max(_saving_steps(resumed))
    assert caught not in _saved_steps(resumed)  # killed mid-save: only its temporary is there
    start = max(_saved_steps(resumed), default=0)  # 2: soon after the next checkpoint completes
    _kill_when(_launch(config, resumed, env, run_log),
               _after(lambda: start + 2 in _saved_steps(resumed), rng.uniform(0.0, 0.5)))
    _kill_when(_launch(config, resumed, env, run_log),  # 3: during start-up or restore
               _after(lambda: True, rng.uniform(1.0, 5.0)))
    _finish(_launch(config, resumed, env, run_log), run_log)

    step, state, resumed_data = _final(resumed)
    assert step == STEPS and resumed_data == data_state
    jax.tree.map(np.testing.assert_array_equal, state, reference)
