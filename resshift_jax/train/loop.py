"""The training loop: restore or init, sharded steps, logging, validation, checkpoints.

The host never waits for the step it has just dispatched: batches are built ahead by a
`DevicePrefetcher`, and the metrics of step N (non-finite counters included) are read
once step N+1 is queued (as nanodo and big_vision). Saving and validating need the
state's values anyway, so at those steps the metrics are read before the next dispatch.
On many hosts the data state's per-process skip counts are summed over the hosts (a tiny
collective queued after step N, read with its metrics) at the steps that log or save them,
and a stop request (SIGTERM reaches hosts at different steps) is agreed the same way: each
host's flag after step N, maxed over the hosts and read with N's metrics, so every host
saves and stops at step N+1 together (a host stopping alone would hang the others' next
collective).
"""
import functools
import pathlib
from typing import Callable, Optional

import jax
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions

from resshift_jax import sharding
from resshift_jax.train.checkpoints import Checkpointer, StopFlag, check_experiment
from resshift_jax.train.optim import learning_rate, make_optimizer
from resshift_jax.train.prefetch import DevicePrefetcher
from resshift_jax.train.state import create_state
from resshift_jax.train.step import make_train_step


class NonFiniteError(RuntimeError):
    """Too many consecutive non-finite steps; the last good checkpoint is left intact."""


def _mean(history):
    return {k: float(np.mean([h[k] for h in history])) for k in history[0]}


def _all_hosts(data_state: dict, mesh, sum_rows: Callable) -> dict:
    """`data_state` with its "skipped" list (one entry per process, each host filling its
    own) summed over the hosts, as a device array not yet read; unchanged on one host."""
    skipped = data_state.get("skipped")
    if jax.process_count() == 1 or not isinstance(skipped, list):
        return data_state
    rows = np.zeros((len(mesh.local_devices), len(skipped)), np.int32)
    rows[0] = skipped
    local = jax.make_array_from_process_local_data(sharding.data_sharding(mesh), rows)
    return {**data_state, "skipped": sum_rows(local)}


def _stop_vote(flag: bool, mesh, max_rows: Callable):
    """This host's stop flag maxed over every host, as a device array not yet read."""
    rows = np.zeros((len(mesh.local_devices),), np.int32)
    rows[0] = flag
    return max_rows(jax.make_array_from_process_local_data(sharding.data_sharding(mesh), rows))


def state_layout(tc, init_params, optimizer, mesh):
    """(init_params -> fresh state, its abstract state, its shardings as `train.fsdp` asks);
    `init_params` may be abstract."""
    init = functools.partial(create_state, optimizer=optimizer, seed=int(tc.seed))
    abstract = jax.eval_shape(init, init_params)
    shardings = sharding.state_shardings(
        abstract, mesh, fsdp=bool(tc.get("fsdp", False)),
        min_size=int(tc.get("fsdp_min_size", sharding.FSDP_MIN_SIZE)))
    return init, abstract, shardings


def _init_or_restore(config, init_params, optimizer, mesh, checkpointer):
    """(state sharded as `train.fsdp` asks, data state or None): the latest checkpoint's,
    else a fresh state created directly into its shardings."""
    init, abstract, shardings = state_layout(config.train, init_params, optimizer, mesh)
    restored = checkpointer.restore_latest(jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings))
    if restored is not None:
        logging.info("resumed from step %d", int(restored[0].step))
        return restored, shardings
    params = jax.tree.map(  # every host holds the same copy: each places its own shards
        lambda x, s: jax.make_array_from_callback(x.shape, s, lambda index: x[index]),
        jax.device_get(init_params), shardings.params)
    return (jax.jit(init, out_shardings=shardings)(params), None), shardings


def jit_train_step(tc, loss_fn: Callable, optimizer, mesh, state_shardings, microbatches: int):
    """The step `train_and_evaluate` runs: sharded over `mesh` (the batch over 'data', the
    state as `state_shardings`, `frozen` replicated), donating its state."""
    replicated = sharding.replicated(mesh)
    param_specs = jax.tree.map(lambda s: s.spec, state_shardings.params)
    return jax.jit(make_train_step(loss_fn, optimizer, microbatches=microbatches,
                                   ema_rate=float(tc.ema_rate), mesh=mesh,
                                   param_specs=param_specs),
                   in_shardings=(state_shardings, sharding.data_sharding(mesh), replicated),
                   out_shardings=(state_shardings, replicated), donate_argnums=0)


def train_and_evaluate(config, workdir, *, init_params, loss_fn: Callable, data_iterator,
                       frozen=None, eval_fn: Optional[Callable] = None, mesh=None,
                       stop: Optional[StopFlag] = None):
    """Train `init_params` with `loss_fn(params, batch, keys, frozen)`; returns the final state.

    Resumes from the latest checkpoint in `workdir/checkpoints` (params, optimizer, EMA,
    RNG and the data iterator's position), so a killed run continues exactly, unless the
    config recorded in `workdir/config.json` is another experiment's. On return
    `data_iterator` is at the batch after the last one trained on.
    """
    tc = config.train
    mesh = mesh or sharding.make_mesh()
    microbatches = sharding.check_batch(int(tc.batch), int(tc.get("microbatch") or tc.batch), mesh)
    workdir = pathlib.Path(workdir)
    optimizer = make_optimizer(tc)
    replicated = sharding.replicated(mesh)
    keep = tc.get("keep_checkpoints", 3)  # None: keep all
    checkpointer = Checkpointer(workdir / "checkpoints", keep=None if keep is None else int(keep))
    check_experiment(workdir, config, resuming=checkpointer.latest_step() is not None)
    (state, data_state), state_shardings = _init_or_restore(
        config, init_params, optimizer, mesh, checkpointer)
    if data_state is not None:
        data_iterator.set_state(data_state)
    frozen = jax.device_put(frozen if frozen is not None else {}, replicated)
    step_fn = jit_train_step(tc, loss_fn, optimizer, mesh, state_shardings, microbatches)
    sum_rows = jax.jit(lambda rows: rows.sum(0), out_shardings=replicated)
    max_rows = jax.jit(lambda rows: rows.max(), out_shardings=replicated)
    many_hosts = jax.process_count() > 1
    gather = jax.jit(lambda tree: tree, out_shardings=replicated)
    agreed_stop = [False]  # many hosts: the stop flag every host read for the last reported step
    writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
    total, log_freq = int(tc.iterations), int(tc.log_freq)
    max_nonfinite = int(tc.get("max_nonfinite_steps", 100))
    hooks = [periodic_actions.ReportProgress(num_train_steps=total, writer=writer)]
    lr = learning_rate(tc)
    history = []

    def logs(step):
        return step % log_freq == 0 or step == total

    def report(step, metrics, data_state):
        """Read step's metrics (blocks until it is done), log them, stop on non-finite runs;
        returns the data state as host values."""
        metrics, data_state = jax.device_get((metrics, data_state))
        if "skipped" in data_state:
            data_state = {**data_state, "skipped": np.asarray(data_state["skipped"]).tolist()}
        run, nonfinite_total = int(metrics.pop("nonfinite_run")), int(metrics.pop("nonfinite_total"))
        if "stop_vote" in metrics:
            agreed_stop[0] = bool(metrics.pop("stop_vote"))
        history.append(metrics)
        for hook in hooks:
            hook(step)
        if logs(step):
            scalars = _mean(history)
            history.clear()
            scalars.update(lr=float(lr(step - 1)), nonfinite_total=nonfinite_total)
            if "skipped" in data_state:
                scalars["data_skipped"] = int(np.sum(data_state["skipped"]))
            writer.write_scalars(step, scalars)
        if run >= max_nonfinite:
            raise NonFiniteError(
                f"{run} consecutive steps with non-finite loss or gradients at step {step}; "
                f"stopped. The last checkpoint (step {checkpointer.latest_step()}) is intact: "
                f"lower train.lr or check the data")
        return data_state

    stop = (stop or StopFlag()).install()
    batches = DevicePrefetcher(data_iterator, functools.partial(sharding.global_batch, mesh=mesh),
                               depth=int(config.get("data", {}).get("device_prefetch", 2)))
    step, pending = int(state.step), None
    try:
        while step < total:
            state, metrics = step_fn(state, next(batches), frozen)
            step += 1
            if many_hosts:
                metrics = {**metrics, "stop_vote": _stop_vote(stop.stop, mesh, max_rows)}
            if pending is not None:  # the previous step's, now that this one is queued
                report(*pending)
            # decided once per step, before saving: a request arriving later (during the save
            # or validation) stops after the next step, which is saved
            stopping = agreed_stop[0] if many_hosts else stop.stop
            save = step % int(tc.save_freq) == 0 or step == total or stopping
            evaluate = eval_fn is not None and (step % int(tc.val_freq) == 0 or step == total)
            data_state = batches.get_state()
            if save or logs(step):
                data_state = _all_hosts(data_state, mesh, sum_rows)
            pending = (step, metrics, data_state)
            if save or evaluate:  # both wait for this step: check it before keeping it
                data_state = report(*pending)
                pending = None
            if save:
                checkpointer.save(step, state, data_state, force=True)
            if evaluate:
                params = state.ema_params if tc.get("use_ema_val", True) else state.params
                if many_hosts:  # validation runs on this host's devices: give it its own copy
                    params = jax.tree.map(lambda a: a.addressable_data(0), gather(params))
                results = eval_fn(params, step)
                images = results.pop("images", None)
                writer.write_scalars(step, results)
                if images is not None:
                    writer.write_images(step, {"val/lq_sr_gt": images})
            if stopping:
                logging.warning("%s: saved step %d, exiting", stop.name, step)
                break
    finally:
        batches.close()
        checkpointer.wait()
        checkpointer.close()
        writer.flush()
        stop.uninstall()
    return state
