"""Orbax checkpoints of the train state plus the data iterator's position (async, keep K).

A checkpoint is written atomically by orbax (a temporary folder renamed when complete), so
a run killed mid-save resumes from the previous one.
"""
import pathlib
import signal
import threading
from typing import Optional, Tuple

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory, keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=async_save, create=True))

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, state, data_state: dict, *, force: bool = False) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=force)

    def restore_latest(self, target) -> Optional[Tuple[object, dict]]:
        """(state shaped and sharded like `target`, data state) of the latest save, or None.

        `target` holds arrays or jax.ShapeDtypeStructs with shardings; each host reads only
        its shards, so a replicated save restores into FSDP shardings and back.
        """
        step = self.manager.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return restored.state, restored.data

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


class StopFlag:
    """Set by SIGTERM (preemption): the loop saves a checkpoint and exits at the next step."""

    def __init__(self):
        self.event = threading.Event()
        self._previous = None

    def __call__(self, signum=None, frame=None) -> None:
        self.event.set()

    def install(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    @property
    def stop(self) -> bool:
        return self.event.is_set()
