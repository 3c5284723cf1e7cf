"""Orbax checkpoints of the train state plus the data iterator's position (async; last K or all).

A checkpoint is written atomically by orbax (a temporary folder renamed when complete), so
a run killed mid-save resumes from the previous one. A run starting afresh records its config
in WORKDIR/config.json; on resume, a config differing from it in a field of `EXPERIMENT` (the
same network trained on another schedule, data or seed, say) is refused in one line naming
the fields, and a checkpoint made by another model is refused naming the first differing
array (a workdir from before the record resumes unchecked, with a warning). One that
cannot be read (damaged on disk) is moved to `unreadable_checkpoints/` beside the folder,
never deleted, and the newest readable one before it is taken.
"""
import contextlib
import json
import os
import pathlib
import signal
import sys
import threading
from typing import Optional, Tuple

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


class CheckpointMismatch(ValueError):
    """The workdir's checkpoints do not fit this config, or none of them can be read."""


def _line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _name(path) -> str:
    """A tree path as orbax names the array ("opt_state.0.mu.conv.kernel")."""
    return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


RECORD = "config.json"
# What makes a run the run it is: a resumed run must agree with its record in every field
# under these but MAY_CHANGE's. The others may change on resume: iterations, save/log/val
# frequencies, keep_checkpoints, lr and the optimiser's settings, microbatch, compute dtype,
# FSDP, validation, sampling, and the weight paths (model_ckpt, autoencoder.ckpt,
# train.lpips_*: files that only start a run or stay frozen, and may move).
EXPERIMENT = ("sf", "model", "autoencoder.params", "diffusion", "data.train", "distill",
              "train.seed", "train.batch", "train.init", "train.loss_coef")
MAY_CHANGE = ("data.train.num_workers", "data.train.prefetch", "distill.teacher_ckpt")
_ABSENT = object()


def _leaves(tree, prefix: str = "") -> dict:
    """{dotted name: value} of a JSON tree's leaves (lists and empty dicts are leaves)."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    return {name: value for key, sub in tree.items()
            for name, value in _leaves(sub, f"{prefix}.{key}" if prefix else key).items()}


def experiment_fields(record: dict) -> dict:
    """{dotted name: value} of the fields of a config, as JSON, that define its experiment."""
    return {name: value for name, value in _leaves(record).items() if name not in MAY_CHANGE
            and any(name == field or name.startswith(field + ".") for field in EXPERIMENT)}


def experiment_mismatch(record: dict, config: dict) -> Optional[str]:
    """How `config` (as JSON) differs from the recorded one in the experiment's fields, or None."""
    there, here = experiment_fields(record), experiment_fields(config)
    differ = sorted(name for name in there.keys() | here.keys()
                    if there.get(name, _ABSENT) != here.get(name, _ABSENT))
    if not differ:
        return None

    def show(value) -> str:
        text = "absent" if value is _ABSENT else repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    shown = "; ".join(f"{name} is {show(there.get(name, _ABSENT))} there, "
                      f"{show(here.get(name, _ABSENT))} here" for name in differ[:3])
    rest = differ[3:]
    if rest:
        shown += f"; also {', '.join(rest[:7])}" + (f" and {len(rest) - 7} more" if len(rest) > 7
                                                    else "")
    return shown


def check_experiment(workdir, config, *, resuming: bool) -> None:
    """Refuse (CheckpointMismatch) to resume a run whose recorded config differs from `config`
    in the experiment's fields; record `config` when the run starts afresh (process 0)."""
    path = pathlib.Path(workdir) / RECORD
    here = json.loads(config.to_json_best_effort(sort_keys=True))
    if resuming and path.exists():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointMismatch(f"{path} cannot be read ({_line(err)}); restore it, or "
                                     "delete it to resume without checking the config") from None
        problem = experiment_mismatch(record, here)
        if problem is not None:
            raise CheckpointMismatch(
                f"{path}: this workdir's run is another experiment: {problem}; train with its "
                f"config, give another --workdir, or edit {RECORD} to resume deliberately")
        return
    if jax.process_index() != 0:
        return
    if resuming:
        logging.warning("%s: no config recorded (a workdir from before the record), so the "
                        "resumed run is not checked against it; recording this one", path.parent)
    if path.exists() and not _is_record(path):
        raise CheckpointMismatch(f"{path}: a file this project did not write (it records a "
                                 "run's config there); move it, or give another --workdir")
    temporary = path.with_name(RECORD + ".tmp")
    temporary.write_text(json.dumps(here, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _is_record(path: pathlib.Path) -> bool:
    """Whether `path` holds a config this project recorded (a JSON object with `train`), which
    a fresh run may replace; anything else there is the user's."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("train"), dict)


@contextlib.contextmanager
def _closed_loop_callbacks_dropped():
    """Orbax reads a checkpoint's arrays concurrently under one asyncio loop. When one read
    fails (a damaged file) the loop closes, and tensorstore's callbacks for the reads still in
    flight each raise "Event loop is closed" as an unraisable exception: a traceback apiece,
    saying nothing the one-line warning about that checkpoint does not. Those are dropped."""
    previous = sys.unraisablehook

    def hook(unraisable):
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


class Checkpointer:
    def __init__(self, directory, keep: Optional[int] = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=async_save, create=True),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": ocp.JsonCheckpointHandler()})

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, state, data_state: dict, *, force: bool = False) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=force)

    def mismatch(self, step: int, abstract) -> Optional[str]:
        """How the arrays saved at `step` differ from `abstract`'s (names, shapes), or None."""
        saved = {leaf.name: tuple(leaf.shape) for leaf in
                 jax.tree.leaves(self.manager.item_metadata(step)["state"])}
        if not saved:
            raise ValueError("its array metadata cannot be read")
        wanted = {_name(path): tuple(leaf.shape) for path, leaf in
                  jax.tree_util.tree_flatten_with_path(abstract)[0]}
        problems = [f"{name} is {saved[name]} there, {shape} here" for name, shape in
                    wanted.items() if name in saved and saved[name] != shape]
        problems += [f"{name} is missing there" for name in wanted if name not in saved]
        problems += [f"{name} is not in this config" for name in saved if name not in wanted]
        if not problems:
            return None
        more = f" (and {len(problems) - 1} more differences)" if len(problems) > 1 else ""
        return problems[0] + more

    def restore_latest(self, target) -> Optional[Tuple[object, dict]]:
        """(state shaped and sharded like `target`, data state) of the newest readable save,
        or None when there is none; `CheckpointMismatch` when it was made by another config.

        `target` holds arrays or jax.ShapeDtypeStructs with shardings; each host reads only
        its shards, so a replicated save restores into FSDP shardings and back.
        """
        with _closed_loop_callbacks_dropped():
            return self._restore_latest(jax.tree.map(ocp.utils.to_shape_dtype_struct, target))

    def _restore_latest(self, abstract):
        unreadable = {}
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                problem = self.mismatch(step, abstract)
                if problem is None:
                    restored = self.manager.restore(step, args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
            except Exception as err:  # noqa: BLE001 -- damaged on disk: try the one before
                unreadable[step] = _line(err)
                continue
            if problem is not None:
                raise CheckpointMismatch(
                    f"{self.directory / str(step)} was made by another model or config: "
                    f"{problem}; train with the config that made it, or give another --workdir")
            self._set_aside(unreadable)
            return restored.state, restored.data
        if unreadable:
            newest = max(unreadable)
            raise CheckpointMismatch(f"{self.directory}: no checkpoint can be read (step {newest}: "
                                     f"{unreadable[newest]})")
        return None

    def _set_aside(self, unreadable: dict) -> None:
        """Move the unreadable checkpoints to `unreadable_checkpoints/` (process 0), so that
        training can save those steps again."""
        if not unreadable:
            return
        aside = self.directory.parent / "unreadable_checkpoints"
        if jax.process_index() == 0:
            aside.mkdir(exist_ok=True)
            for step, reason in sorted(unreadable.items()):
                target = aside / str(step)
                while target.exists():
                    target = target.with_name(target.name + "_")
                (self.directory / str(step)).rename(target)
                logging.warning("checkpoint %d cannot be read (%s): moved to %s", step, reason, target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("unreadable checkpoints set aside")
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


class StopFlag:
    """Set by SIGTERM (preemption) or a first Ctrl-C: the loop saves a checkpoint and exits
    at the next step (`signum` says which); a second Ctrl-C stops at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.event = threading.Event()
        self.signum: Optional[int] = None
        self._previous = {}

    def __call__(self, signum=None, frame=None) -> None:
        if signum == signal.SIGINT and self.event.is_set():
            raise KeyboardInterrupt
        if signum == signal.SIGINT:
            logging.warning("Ctrl-C: saving a checkpoint after this step, then stopping "
                            "(Ctrl-C again: stop at once, losing the steps since the last save)")
        self.signum = signum
        self.event.set()

    def install(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self) for sig in self.SIGNALS}
        return self

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    @property
    def stop(self) -> bool:
        return self.event.is_set()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "stop requested"
