"""The sharded train loop on a toy regression: learning, 8 vs 1 device, resume, faults."""
import json
import os
import shutil
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from resshift_jax import sharding
from resshift_jax.train import loop
from resshift_jax.train.checkpoints import (Checkpointer, CheckpointMismatch, StopFlag,
                                            experiment_mismatch)
from resshift_jax.train.loop import NonFiniteError, train_and_evaluate
from resshift_jax.train.optim import learning_rate, make_optimizer
from resshift_jax.train.state import create_state
from resshift_jax.train.step import make_train_step

W_TRUE = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)


class ToyData:
    """Deterministic batches by index; `nan_at` poisons chosen batches."""

    def __init__(self, batch=16, nan_at=(), kill_at=None):
        self.batch, self.index, self.nan_at, self.kill_at = batch, 0, set(nan_at), kill_at
        self.threads = set()

    def __next__(self):
        self.threads.add(threading.current_thread().name)
        if self.index == self.kill_at:
            raise KeyboardInterrupt("killed")
        rng = np.random.default_rng(self.index)
        x = rng.normal(size=(self.batch, 4)).astype(np.float32)
        y = x @ W_TRUE + 0.01 * rng.normal(size=(self.batch, 3)).astype(np.float32)
        if self.index in self.nan_at:
            x[0, 0] = np.nan
        self.index += 1
        return {"x": x, "y": y}

    def get_state(self):
        return {"index": self.index}

    def set_state(self, state):
        self.index = int(state["index"])


def example_noise(keys, like):
    """Standard normal noise shaped like `like`, each row from its example's key."""
    return jax.vmap(lambda k: jax.random.normal(k, like.shape[1:]))(keys)


def toy_loss(params, batch, keys, frozen):
    noise = 1e-3 * example_noise(keys, batch["y"])
    pred = batch["x"] @ params["w"] + params["b"] + frozen["offset"]
    mse = jnp.mean((pred - batch["y"] + noise) ** 2)
    return mse, {"mse": mse}


def toy_config(**train):
    c = ml_collections.ConfigDict()
    c.train = dict(lr=0.05, lr_min=0.01, lr_schedule="cosin", warmup_iterations=5,
                   iterations=50, batch=16, microbatch=16, ema_rate=0.9, weight_decay=0.0,
                   grad_clip=None, save_freq=10, log_freq=10, val_freq=1000,
                   keep_checkpoints=2, seed=0, max_nonfinite_steps=3)
    c.train.update(train)
    return c


INIT = {"w": jnp.zeros((4, 3)), "b": jnp.zeros((3,))}
FROZEN = {"offset": jnp.zeros(())}


def run(tmp_path, config, data=None, mesh=None, **kw):
    data = data or ToyData(config.train.batch)
    state = train_and_evaluate(config, tmp_path, init_params=INIT, loss_fn=toy_loss,
                               data_iterator=data, frozen=FROZEN, mesh=mesh, **kw)
    return jax.device_get(state), data


def test_loss_falls(tmp_path):
    state, _ = run(tmp_path, toy_config())
    keys = jax.random.split(jax.random.key(0), 16)
    first = toy_loss(INIT, next(ToyData()), keys, FROZEN)[0]
    last = toy_loss(state.params, next(ToyData()), keys, FROZEN)[0]
    assert float(last) < 0.05 * float(first)
    assert int(state.step) == 50


def test_eight_devices_match_one(tmp_path):
    """Microbatches of 4 per device: 4 slices on one device, one (its 2 rows) on eight."""
    assert jax.device_count() == 8
    config = toy_config(iterations=3, save_freq=100, microbatch=4)
    eight, _ = run(tmp_path / "8", config)
    one, _ = run(tmp_path / "1", config, mesh=sharding.make_mesh(jax.devices()[:1]))
    for a, b in zip(jax.tree.leaves((eight.params, eight.ema_params)),
                    jax.tree.leaves((one.params, one.ema_params))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def wait_for_prefetch(data, ahead: list, depth: int = 2):
    """An eval_fn that waits until the data thread has pulled `depth` batches past the step."""
    def eval_fn(ema_params, step):
        deadline = time.monotonic() + 30
        while data.index < step + depth and time.monotonic() < deadline:
            time.sleep(0.01)
        ahead.append(data.index - step)
        return {}
    return eval_fn


def test_resume_is_exact(tmp_path):
    """Killed in the data thread at step 14; the step-10 checkpoint was saved while the
    prefetcher was >= 1 batch ahead (it waited at step 9), yet resuming is bit-exact."""
    config = toy_config(iterations=20, val_freq=9)
    straight, data = run(tmp_path / "straight", config)
    killed, ahead = ToyData(kill_at=13), []
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", config, data=killed, eval_fn=wait_for_prefetch(killed, ahead))
    assert ahead == [2] or ahead == [3]  # the queue's 2, perhaps one more waiting to go in
    assert killed.threads == {"device_prefetch"}
    resumed, data2 = run(tmp_path / "resumed", config)
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    assert data.get_state() == data2.get_state() == {"index": 20}


def test_host_reads_metrics_after_next_step_is_dispatched(tmp_path, monkeypatch):
    """The loop dispatches step k+1 before it reads step k's metrics, so the host never
    waits on the device between steps. Checked as the order of the host's calls: a device
    callback that waits for the next batch would say the same on JAX <= 0.11, but JAX
    0.12's CPU client runs a multi-device program with a host callback synchronously."""
    events = []
    jit_train_step = loop.jit_train_step

    def logged_step(*args):
        step_fn = jit_train_step(*args)

        def dispatch(*step_args):
            events.append(("dispatch", len([e for e in events if e[0] == "dispatch"]) + 1))
            return step_fn(*step_args)
        return dispatch
    monkeypatch.setattr(loop, "jit_train_step", logged_step)
    create_writer = loop.metric_writers.create_default_writer

    class LoggedWriter:
        def __init__(self, *args, **kwargs):
            self.writer = create_writer(*args, **kwargs)

        def write_scalars(self, step, scalars):
            if "mse" in scalars:  # the step's own metrics, read from the device
                events.append(("read", int(step)))
            self.writer.write_scalars(step, scalars)

        def __getattr__(self, name):
            return getattr(self.writer, name)
    monkeypatch.setattr(loop.metric_writers, "create_default_writer", LoggedWriter)
    run(tmp_path, toy_config(iterations=4, save_freq=100, log_freq=1))
    assert events == [("dispatch", 1), ("dispatch", 2), ("read", 1), ("dispatch", 3),
                      ("read", 2), ("dispatch", 4), ("read", 3), ("read", 4)]


def test_microbatches_train_the_same_step():
    """Each example's noise comes from its row's key, not its microbatch's: 1, 2 or 4
    microbatches of the noisy toy loss give the same step, to float rounding (so does any
    device count, whose share sets the microbatches)."""
    optimizer = make_optimizer(toy_config().train)
    state = create_state(INIT, optimizer, 0)
    batch = next(ToyData(16))
    (full, full_metrics), *splits = [make_train_step(toy_loss, optimizer, microbatches=m)(
        state, batch, FROZEN) for m in (1, 2, 4)]
    for split, metrics in splits:
        np.testing.assert_allclose(metrics["mse"], full_metrics["mse"], rtol=1e-6)
        for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(split.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_microbatch_is_per_device_as_the_references():
    """The released recipes' (batch, microbatch), e.g. v3's (96, 12), run on 1 to 32
    devices: one slice of 12 per device on 8, as the reference on 8 GPUs; 8 on one."""
    from configs import faceir, realsr_v1, realsr_v3
    devices = jax.devices()

    def slices(batch, microbatch, n):
        return sharding.check_batch(batch, microbatch, sharding.make_mesh(devices[:n]))
    assert [slices(96, 12, n) for n in (1, 2, 4, 8)] == [8, 4, 2, 1]
    assert slices(16, 8, 8) == 1 and slices(4, 2, 1) == 2
    for config in (realsr_v3, realsr_v1, faceir):
        t = config.get_config().train
        assert [slices(t.batch, t.microbatch, n) for n in (1, 8)] == [
            t.batch // t.microbatch, 1], config.__name__
    with pytest.raises(sharding.BatchError, match=r"must divide the 12 each of the 8 devices "
                                                  r"takes of train.batch=96; e.g. 4"):
        slices(96, 5, 8)
    with pytest.raises(sharding.BatchError, match="at least 1"):
        slices(96, 0, 8)


def test_nonfinite_steps_skipped_then_run_stops(tmp_path):
    state, _ = run(tmp_path / "one", toy_config(iterations=12), data=ToyData(nan_at={3}))
    assert int(state.nonfinite_total) == 1 and np.all(np.isfinite(state.params["w"]))
    with pytest.raises(NonFiniteError, match="3 consecutive steps"):
        run(tmp_path / "many", toy_config(iterations=30), data=ToyData(nan_at=set(range(12, 30))))
    from resshift_jax.train.checkpoints import Checkpointer
    assert Checkpointer(tmp_path / "many" / "checkpoints").latest_step() == 10


def test_skipped_steps_do_not_hold_back_the_lr(tmp_path, monkeypatch):
    """Steps 1-7 non-finite, step 8 applies lr(7) (mid-cosine), as logged: the schedule follows
    the step, as the reference's scheduler, not the count of applied updates (was lr(0) = 0).
    From zero params Adam's first update is lr * g / (|g| + eps), so |params| is that lr."""
    logged = {}
    create_writer = loop.metric_writers.create_default_writer

    class LrWriter:
        def __init__(self, *args, **kwargs):
            self.writer = create_writer(*args, **kwargs)

        def write_scalars(self, step, scalars):
            logged[int(step)] = scalars.get("lr", logged.get(int(step)))
            self.writer.write_scalars(step, scalars)

        def __getattr__(self, name):
            return getattr(self.writer, name)
    monkeypatch.setattr(loop.metric_writers, "create_default_writer", LrWriter)
    config = toy_config(iterations=8, save_freq=100, log_freq=1, max_nonfinite_steps=10)
    state, _ = run(tmp_path, config, data=ToyData(nan_at=set(range(7))))
    applied = np.concatenate([np.abs(p).ravel() for p in jax.tree.leaves(state.params)])
    expected = float(learning_rate(config.train)(7))
    assert int(state.nonfinite_total) == 7 and 0.01 < expected < 0.05
    np.testing.assert_allclose(applied, expected, rtol=1e-5)
    assert logged[8] == pytest.approx(expected, rel=1e-6)


def test_batch_must_split_over_devices(tmp_path):
    with pytest.raises(sharding.BatchError, match="does not split over 8 devices"):
        run(tmp_path, toy_config(batch=12, microbatch=12), data=ToyData(12))


def test_sigterm_saves_and_stops(tmp_path):
    flag = StopFlag()
    flag()  # as if SIGTERM arrived before the first step
    state, data = run(tmp_path, toy_config(), stop=flag)
    assert int(state.step) == 1
    from resshift_jax.train.checkpoints import Checkpointer
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 1


def test_sigterm_during_validation_saves_the_next_step_and_stops(tmp_path):
    """Validation (minutes on a real model) at a step that is not saved: the request is
    seen after it, so the loop trains one more step, saves it, and says so."""
    flag = StopFlag()

    def eval_fn(params, step):
        if step == 15:
            flag()
        return {"val/step": float(step)}

    state, _ = run(tmp_path, toy_config(save_freq=10, val_freq=5), eval_fn=eval_fn, stop=flag)
    assert int(state.step) == 16
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 16


def test_checkpoint_of_another_config_is_refused_naming_an_array(tmp_path):
    run(tmp_path, toy_config(iterations=10))
    wider = {"w": jnp.zeros((5, 3)), "b": jnp.zeros((3,))}
    with pytest.raises(CheckpointMismatch, match=r"params\.w is \(4, 3\) there, \(5, 3\) here"):
        train_and_evaluate(toy_config(iterations=20), tmp_path, init_params=wider,
                           loss_fn=toy_loss, data_iterator=ToyData(), frozen=FROZEN)
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 10  # left as it was


def as_json(config) -> dict:
    return json.loads(config.to_json_best_effort())


def test_another_experiment_is_told_from_a_resumable_change():
    """The fields that define an experiment (network, schedule, data, seed, batch, losses)
    must agree with the record; what a resumed run may change (length, frequencies, lr,
    microbatch, workers, validation, weight paths) need not."""
    from configs import bicsr, realsr_v3, sinsr_v1
    v3 = realsr_v3.get_config()
    record = as_json(v3)
    v3.train.update(dict(iterations=500000, save_freq=500, lr=1e-5, microbatch=4,
                         keep_checkpoints=None, compute_dtype="float32", fsdp=True))
    v3.data.train.update(dict(num_workers=1, prefetch=8))
    v3.model_ckpt, v3.data.val, v3.autoencoder.ckpt = "v3", None, "weights/moved.pth"
    assert experiment_mismatch(record, as_json(v3)) is None
    assert experiment_mismatch(record, as_json(bicsr.get_config())).startswith(
        "data.train.crop_pad_size is 300 there, 256 here; data.train.params.activate_matlab "
        "is absent there, True here; ")
    for field, value, says in [("seed", 7, "train.seed is 123456 there, 7 here"),
                               ("batch", 48, "train.batch is 96 there, 48 here"),
                               ("loss_coef", dict(mse=1.0, lpips=0.0), "train.loss_coef.lpips")]:
        changed = realsr_v3.get_config()
        changed.train[field] = value
        assert experiment_mismatch(record, as_json(changed)) == says + (
            " is 1.0 there, 0.0 here" if field == "loss_coef" else "")
    changed = realsr_v3.get_config()
    changed.diffusion.update(dict(steps=15, kappa=1.0))
    assert experiment_mismatch(record, as_json(changed)) == (
        "diffusion.kappa is 2.0 there, 1.0 here; diffusion.steps is 4 there, 15 here")
    sinsr = sinsr_v1.get_config("realsr_v3")
    assert experiment_mismatch(record, as_json(sinsr)).startswith("distill.finetune_use_gt is "
                                                                  "absent there, 1.0 here")
    sinsr_record = as_json(sinsr)
    sinsr.distill.teacher_ckpt = "runs/teacher"
    assert experiment_mismatch(sinsr_record, as_json(sinsr)) is None


def test_workdir_of_another_experiment_is_refused_a_legacy_one_resumed(tmp_path, caplog):
    """A run records its config; resuming with another seed is refused (checkpoints left as
    they were), a longer run at another lr resumes, and a workdir with no record (made before
    it) resumes and records the config it resumed with."""
    run(tmp_path, toy_config(iterations=10))
    assert json.loads((tmp_path / "config.json").read_text())["train"]["seed"] == 0
    with pytest.raises(CheckpointMismatch, match=r"config.json: this workdir's run is another "
                                                 r"experiment: train.seed is 0 there, 1 here; "):
        run(tmp_path, toy_config(iterations=20, seed=1))
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 10
    state, _ = run(tmp_path, toy_config(iterations=20, lr=0.01))
    assert int(state.step) == 20
    (tmp_path / "config.json").unlink()
    state, _ = run(tmp_path, toy_config(iterations=30, seed=1))
    assert int(state.step) == 30 and "no config recorded" in caplog.text
    assert json.loads((tmp_path / "config.json").read_text())["train"]["seed"] == 1


def test_a_config_json_of_the_users_in_a_new_workdir_is_never_replaced(tmp_path):
    """A fresh run replaces only a record it wrote (checkpoints since deleted, say)."""
    mine = '{"my": "notes"}\n'
    (tmp_path / "config.json").write_text(mine)
    with pytest.raises(CheckpointMismatch, match="config.json: a file this project did not "
                                                 "write"):
        run(tmp_path, toy_config(iterations=2))
    assert (tmp_path / "config.json").read_text() == mine
    (tmp_path / "config.json").unlink()
    run(tmp_path, toy_config(iterations=2))
    shutil.rmtree(tmp_path / "checkpoints")
    state, _ = run(tmp_path, toy_config(iterations=2, seed=3))
    assert json.loads((tmp_path / "config.json").read_text())["train"]["seed"] == 3


def test_unreadable_checkpoint_is_set_aside_and_the_one_before_resumed(tmp_path):
    constant_lr = dict(lr_schedule=None)  # the same learning rates whatever `iterations` says
    whole, _ = run(tmp_path / "whole", toy_config(iterations=30, **constant_lr))
    run(tmp_path / "damaged", toy_config(iterations=20, **constant_lr))
    (tmp_path / "damaged" / "checkpoints" / "20" / "state" / "_METADATA").unlink()
    state, _ = run(tmp_path / "damaged", toy_config(iterations=30, **constant_lr))
    assert (tmp_path / "damaged" / "unreadable_checkpoints" / "20" / "state").is_dir()
    assert Checkpointer(tmp_path / "damaged" / "checkpoints").manager.all_steps() == [20, 30]
    np.testing.assert_array_equal(state.params["w"], whole.params["w"])


def test_truncated_array_file_is_one_warning_not_tracebacks(tmp_path, monkeypatch):
    """A damaged data file fails one of orbax's concurrent reads; the reads still in flight
    must not each print a traceback ("Event loop is closed", as unraisable exceptions, which
    Python prints and pytest turns into warnings) around the one warning."""
    constant_lr = dict(lr_schedule=None)
    run(tmp_path, toy_config(iterations=20, **constant_lr))
    data = max((tmp_path / "checkpoints" / "20" / "state" / "d").iterdir(),
               key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    state, _ = run(tmp_path, toy_config(iterations=30, **constant_lr))
    assert int(state.step) == 30 and (tmp_path / "unreadable_checkpoints" / "20").is_dir()
    assert not unraisable, unraisable


def test_no_readable_checkpoint_is_an_error(tmp_path):
    run(tmp_path, toy_config(iterations=10))
    (tmp_path / "checkpoints" / "10" / "state" / "_METADATA").unlink()
    with pytest.raises(CheckpointMismatch, match="no checkpoint can be read"):
        run(tmp_path, toy_config(iterations=20))


def test_first_ctrl_c_asks_for_a_save_the_second_stops_at_once():
    flag = StopFlag().install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.stop and flag.signum == signal.SIGINT and flag.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    finally:
        flag.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("field, value, says", [
    ("batch", 0, "train.batch=0: must be positive"),
    ("iterations", -3, "train.iterations=-3: must be positive"),
    ("lr", 0.0, "train.lr=0.0: must be positive"),
    ("lr_schedule", "cosine", "train.lr_schedule='cosine'"),
    ("lr_min", 0.1, r"train.lr_min=0.1: must be in 0..train.lr"),
    ("warmup_iterations", -1, "train.warmup_iterations=-1"),
    ("compute_dtype", "float17", "train.compute_dtype='float17'"),
    ("ema_rate", 1.5, "train.ema_rate=1.5"),
    ("save_freq", None, "train.save_freq=None: must be positive"),
    ("log_freq", 0, "train.log_freq=0: must be positive"),
    ("keep_checkpoints", 0, "train.keep_checkpoints=0: must be positive, or None to keep all"),
    ("max_nonfinite_steps", 0, "train.max_nonfinite_steps=0: must be at least 1"),
    ("max_nonfinite_steps", None, "train.max_nonfinite_steps=None: must be at least 1"),
])
def test_unusable_train_settings_are_refused_before_anything_is_built(field, value, says):
    from resshift_jax.train.experiment import SetupError, check_train_config
    check_train_config(toy_config().train)
    with pytest.raises(SetupError, match=says):
        check_train_config(toy_config(**{field: value}).train)


def test_keep_checkpoints_none_keeps_all(tmp_path):
    from resshift_jax.train.experiment import check_train_config
    config = toy_config(iterations=6, save_freq=2, keep_checkpoints=None)
    check_train_config(config.train)
    run(tmp_path, config)
    assert Checkpointer(tmp_path / "checkpoints").manager.all_steps() == [2, 4, 6]
