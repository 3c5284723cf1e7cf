"""`sample.py --multihost`: each process restores its own share of the files; process 0
reports for all.

Every process plans the same sorted job list and takes every `count`-th job from its
index, so the shares are disjoint, cover the folder and do not depend on timing. Each
process restores on its local devices and writes its own results (no collectives). Its
summary goes through JAX's distributed key-value store; process 0 waits for every
summary (a bounded time), prints each host's line, every failure and the total, so one
host's failure or absence never hides what the others did.
"""
import dataclasses
import json
import time
from typing import Optional

import jax

from resshift_jax.sample_job import Summary

_KEY = "resshift_jax/sample_summary/{}"


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
    """`jax.distributed.initialize` with the given values; the rest auto-detected (TPU pods,
    SLURM, Open MPI) or from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID."""
    given = dict(coordinator_address=coordinator_address, num_processes=num_processes,
                 process_id=process_id)
    jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})


def share(jobs: list, index: int, count: int) -> list:
    """Process `index` of `count`'s jobs: every count-th of the common, sorted list."""
    return jobs[index::count]


def _client():
    from jax._src import distributed  # the store JAX's own multi-host utilities use
    if distributed.global_state.client is None:
        raise RuntimeError("jax.distributed is not initialized")
    return distributed.global_state.client


def publish(summary: Summary, index: int) -> None:
    _client().key_value_set(_KEY.format(index), json.dumps(dataclasses.asdict(summary)))


def gather(count: int, timeout_s: float, client=None) -> list:
    """[Summary or None (none within the time)] of every process, by index: `timeout_s` in
    all, however many hosts are missing (`client`: JAX's key-value store by default)."""
    client = client or _client()
    deadline, summaries = time.monotonic() + timeout_s, []
    for index in range(count):
        left_ms = max(1, int((deadline - time.monotonic()) * 1000))
        try:
            text = client.blocking_key_value_get(_KEY.format(index), left_ms)
        except Exception:  # noqa: BLE001 -- a missing host is reported, not raised
            summaries.append(None)
            continue
        summaries.append(Summary(**json.loads(text)))
    return summaries


def report(summaries: list, timeout_s: float) -> tuple[list, bool]:
    """(lines to print on process 0, whether every host finished without a failure)."""
    lines, total, ok = [], Summary(), True
    for index, summary in enumerate(summaries):
        if summary is None:
            lines.append(f"host {index}: no summary within {timeout_s:g} s (stopped or still "
                         "running); its finished results are in the output folder")
            ok = False
            continue
        lines.append(f"host {index}: {summary.line()}")
        lines.extend(f"failed: {failure}" for failure in summary.failures)
        ok = ok and not summary.failures
        total.done += summary.done
        total.skipped += summary.skipped
        total.failures += summary.failures
        total.compilations += summary.compilations
        total.compile_seconds += summary.compile_seconds
        total.seconds = max(total.seconds, summary.seconds)
    lines.append(f"all {len(summaries)} hosts: {total.line()}")
    return lines, ok
