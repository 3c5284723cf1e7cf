"""The training loop: restore or init, sharded steps, logging, validation, checkpoints."""
import pathlib
from typing import Callable, Optional

import jax
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions

from resshift_jax.train import sharding
from resshift_jax.train.checkpoints import Checkpointer, StopFlag
from resshift_jax.train.optim import learning_rate, make_optimizer
from resshift_jax.train.state import create_state
from resshift_jax.train.step import make_train_step


class NonFiniteError(RuntimeError):
    """Too many consecutive non-finite steps; the last good checkpoint is left intact."""


def _mean(history):
    return {k: float(np.mean([h[k] for h in history])) for k in history[0]}


def train_and_evaluate(config, workdir, *, init_params, loss_fn: Callable, data_iterator,
                       frozen=None, eval_fn: Optional[Callable] = None, mesh=None,
                       stop: Optional[StopFlag] = None):
    """Train `init_params` with `loss_fn(params, batch, rng, frozen)`; returns the final state.

    Resumes from the latest checkpoint in `workdir/checkpoints` (params, optimizer, EMA,
    RNG and the data iterator's position), so a killed run continues exactly.
    """
    tc = config.train
    mesh = mesh or sharding.make_mesh()
    microbatches = sharding.check_batch(int(tc.batch), int(tc.get("microbatch") or tc.batch), mesh)
    workdir = pathlib.Path(workdir)
    optimizer = make_optimizer(tc)
    replicated = sharding.replicated(mesh)
    state = jax.device_put(create_state(init_params, optimizer, int(tc.seed)), replicated)
    checkpointer = Checkpointer(workdir / "checkpoints", keep=int(tc.get("keep_checkpoints", 3)))
    restored = checkpointer.restore_latest(state)
    if restored is not None:
        state, data_state = restored
        data_iterator.set_state(data_state)
        logging.info("resumed from step %d", int(state.step))
    frozen = jax.device_put(frozen if frozen is not None else {}, replicated)
    step_fn = jax.jit(make_train_step(loss_fn, optimizer, microbatches=microbatches,
                                      ema_rate=float(tc.ema_rate)),
                      out_shardings=(replicated, replicated), donate_argnums=0)
    writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
    total = int(tc.iterations)
    hooks = [periodic_actions.ReportProgress(num_train_steps=total, writer=writer)]
    stop = (stop or StopFlag()).install()
    lr = learning_rate(tc)
    history = []
    step = int(state.step)
    try:
        while step < total:
            batch = sharding.global_batch(next(data_iterator), mesh)
            state, metrics = step_fn(state, batch, frozen)
            step += 1
            history.append(metrics)
            for hook in hooks:
                hook(step)
            if step % int(tc.log_freq) == 0 or step == total:
                scalars = _mean(jax.device_get(history))
                history = []
                scalars.update(lr=float(lr(step - 1)), nonfinite_total=int(state.nonfinite_total))
                skipped = getattr(data_iterator, "skipped", None)
                if skipped is not None:
                    scalars["data_skipped"] = skipped
                writer.write_scalars(step, scalars)
            if int(state.nonfinite_run) >= int(tc.get("max_nonfinite_steps", 100)):
                raise NonFiniteError(
                    f"{int(state.nonfinite_run)} consecutive steps with non-finite loss or "
                    f"gradients at step {step}; stopped. The last checkpoint "
                    f"(step {checkpointer.latest_step()}) is intact: lower train.lr or check the data")
            if step % int(tc.save_freq) == 0 or step == total or stop.stop:
                checkpointer.save(step, state, data_iterator.get_state(), force=True)
            if eval_fn is not None and (step % int(tc.val_freq) == 0 or step == total):
                results = eval_fn(state.ema_params, step)
                images = results.pop("images", None)
                writer.write_scalars(step, results)
                if images is not None:
                    writer.write_images(step, {"val/lq_sr_gt": images})
            if stop.stop:
                logging.warning("SIGTERM: saved step %d, exiting", step)
                break
    finally:
        checkpointer.wait()
        checkpointer.close()
        writer.flush()
        stop.uninstall()
    return state
