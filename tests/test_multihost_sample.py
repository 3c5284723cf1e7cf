"""`sample.py --multihost` as 2 real processes on localhost: disjoint shares, one report."""
import dataclasses
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from resshift_jax import multihost
from resshift_jax.sample_job import Summary

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_a_folder_and_process_0_reports_all(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):
        Image.fromarray(rng.integers(0, 256, (24, 20 + k, 3), np.uint8)).save(folder / f"{k}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, str(ROOT / "sample.py"), "--config", str(ROOT / "configs/tiny_test.py"),
           "-i", str(folder), "-o", str(tmp_path / "out"), "--multihost",
           f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
           "--multihost_wait=120"]
    procs = [subprocess.Popen(cmd + [f"--process_id={i}"], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    host0, host1 = (out for out, _ in outs)
    assert [p.returncode for p in procs] == [1, 0], [err[-2000:] for _, err in outs]
    # sorted files 0..3, broken: host 0 gets 0, 2, broken; host 1 gets 1, 3
    assert "host 0: 2 images restored, 1 failed" in host0
    assert "host 1: 2 images restored, 0 failed" in host0 and "host 1: 2 images" in host1
    assert f"failed: {folder / 'broken.png'}:" in host0
    assert "all 2 hosts: 4 images restored, 1 failed" in host0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{k}.png" for k in range(4)]


class _Store:
    """JAX's key-value client as `gather` uses it: host 0 and host 3 of 5 published."""

    def __init__(self):
        self.values = {multihost._KEY.format(i): json.dumps(dataclasses.asdict(Summary(done=i + 1)))
                       for i in (0, 3)}

    def blocking_key_value_get(self, key, timeout_ms):
        if key in self.values:
            return self.values[key]
        time.sleep(timeout_ms / 1000)
        raise TimeoutError(key)


def test_missing_hosts_share_one_wait():
    """Three hosts missing cost `--multihost_wait` once, not three times; the rest are read."""
    start = time.monotonic()
    summaries = multihost.gather(5, 0.6, client=_Store())
    assert time.monotonic() - start < 1.0
    assert [s and s.done for s in summaries] == [1, None, None, 4, None]
