"""Multi-host training, proven on one machine: two `train.py` processes on localhost (JAX's
gloo CPU collectives, one CPU device each, `--coordinator_address --num_processes
--process_id`) train exactly what one process with two devices trains (losses, params, data
position, the count of unreadable images skipped), and one process restores their
checkpoint and continues as the straight run; then the reverse: two processes resume a copy
of the straight run's one-process checkpoint and train what the one process trains on.

All runs are a pixel-space cut of configs/tiny_test.py (batch 4, a one-level UNet, a folder
of four images, one of them unreadable, so that each global batch skips it once) compiled
at XLA's lowest CPU optimisation level and sharing a persistent XLA cache. The two-process
run goes side by side with one process that trains the straight run, then (told on stdin)
resumes the two-process run; every process has a hard deadline and is killed if the test
fails.
"""
import shutil
import os
import pathlib
import socket
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
from tensorboard.compat.proto import event_pb2

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds, for all the runs together
STEPS = 3  # the two processes train 2 of them, the resumed run the last
MORE = 1  # steps more, from the one-process checkpoint of step STEPS, in 1 and in 2 processes
CONFIG = '''
from configs.tiny_test import get_config as tiny_config


def get_config():
    c = tiny_config()
    c.model.update(dict(channel_mult=(1,), num_res_blocks=(1,), attention_resolutions=(),
                        image_size=32, lq_size=32, swin_depth=1, mlp_ratio=1))
    c.autoencoder = None
    c.diffusion.update(dict(latent_flag=False))
    c.data.train.update(dict(gt_size=32, crop_pad_size=32, num_workers=1,
                             sources=({{"type": "folder", "root": {root!r}}},)))
    c.train.update(dict(batch=4, microbatch=4, iterations={steps}, save_freq=2, log_freq=1))
    return c
'''
ONE_PROCESS = '''
import importlib.util, sys
import train
spec = importlib.util.spec_from_file_location("mh_config", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
train.run(module.get_config(), sys.argv[2])
print("straight run done", flush=True)
assert sys.stdin.readline() == "resume\\n"
train.run(module.get_config(), sys.argv[3])
assert sys.stdin.readline() == "more\\n"
config = module.get_config()
config.train.iterations += int(sys.argv[4])
train.run(config, sys.argv[2])
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class Runs:
    """Subprocesses in ROOT, each logging to its own file; `close()` kills what still runs."""

    def __init__(self, base: pathlib.Path):
        self.base, self.procs = base, []
        self.deadline = time.monotonic() + TIMEOUT

    def start(self, name, devices, *args, stdin=None):
        env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
                             "--xla_backend_optimization_level=0 "
                             "--xla_llvm_disable_expensive_passes=true",
                   JAX_COMPILATION_CACHE_DIR=str(self.base / "xla_cache"),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
        log = self.base / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env,
                                    stdin=stdin, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        return proc, log

    def finish(self, *runs):
        for proc, log in runs:
            try:
                proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{log.name}: still running after {TIMEOUT} s") from None
            text = log.read_text(errors="backslashreplace")
            assert proc.returncode == 0 and "Traceback" not in text, f"{log.name}:\n{text[-3000:]}"

    def tell(self, run, line):
        run[0].stdin.write(f"{line}\n".encode())
        run[0].stdin.flush()

    def wait_for(self, run, text):
        """Until `text` is in the log of `run` (a hard failure past the deadline)."""
        proc, log = run
        while text not in log.read_text(errors="backslashreplace"):
            assert proc.poll() is None, f"{log.name} ended before {text!r}"
            assert time.monotonic() < self.deadline, f"{log.name}: no {text!r} in {TIMEOUT} s"
            time.sleep(0.5)

    def close(self):
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _scalars(workdir, tag="loss") -> list:
    """[(step, float32 value of `tag`)] from the TensorBoard event files in `workdir`
    (process 0's)."""
    out = []
    for path in sorted(pathlib.Path(workdir).glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):  # TFRecord: length, its crc, the record, its crc
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += n + 16
            for v in event.summary.value:
                if v.tag == tag:
                    t = v.tensor
                    out.append((event.step, np.frombuffer(t.tensor_content, np.float32)[0]
                                if t.tensor_content else t.float_val[0]))
    return sorted(out)


def _checkpoint(workdir, step):
    """(state tree as numpy, data state) of the checkpoint of `step` in `workdir`."""
    handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler()}
    with ocp.CheckpointManager(pathlib.Path(workdir) / "checkpoints",
                               item_handlers=handlers) as manager:
        device = jax.sharding.make_single_device_sharding(jax.devices()[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                              manager.item_metadata(step)["state"])
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
    return jax.device_get(restored.state), restored.data


def test_two_processes_equal_one_and_resume_across(tmp_path):
    config, straight, multi = tmp_path / "mh_config.py", tmp_path / "straight", tmp_path / "multi"
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in (0, 2, 3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(data / f"img{i}.png")
    (data / "img1.png").write_bytes((data / "img0.png").read_bytes()[:100])  # truncated
    config.write_text(CONFIG.format(steps=STEPS, root=str(data)))
    widened = tmp_path / "widened"
    address, address2 = f"localhost:{_free_port()}", f"localhost:{_free_port()}"
    runs = Runs(tmp_path)
    try:
        pair = [runs.start(f"process{p}", 1, ROOT / "train.py", "--config", config, "--workdir",
                           multi, "--coordinator_address", address, "--num_processes", 2,
                           "--process_id", p, f"--config.train.iterations={STEPS - 1}")
                for p in range(2)]
        one = runs.start("one_process", 2, "-c", ONE_PROCESS, config, straight, multi, MORE,
                         stdin=subprocess.PIPE)
        runs.finish(*pair)
        runs.wait_for(one, "straight run done")
        runs.tell(one, "resume")
        shutil.copytree(straight, widened)
        # its events are the straight run's to compare against; the resumed run writes anew
        for path in widened.glob("events.out.tfevents.*"):
            path.unlink()
        pair = [runs.start(f"widened{p}", 1, ROOT / "train.py", "--config", config, "--workdir",
                           widened, "--coordinator_address", address2, "--num_processes", 2,
                           "--process_id", p, f"--config.train.iterations={STEPS + MORE}")
                for p in range(2)]
        runs.tell(one, "more")
        one[0].stdin.close()
        runs.finish(one, *pair)
    finally:
        runs.close()

    expected, got = _scalars(straight)[:STEPS], _scalars(multi)  # multi: each step logged once
    assert [s for s, _ in expected] == [s for s, _ in got] == list(range(1, STEPS + 1))
    np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=0, atol=1e-6)
    skipped = [(s, s) for s in range(1, STEPS + 1)]  # once a batch, by either process
    assert _scalars(straight, "data_skipped")[:STEPS] == _scalars(multi, "data_skipped") == skipped
    by_process = {STEPS - 1: [0, STEPS - 1], STEPS: [STEPS]}  # (seed 0) process 1 met it twice
    for step in (STEPS - 1, STEPS):  # written by the two processes / the resumed run
        (state, data), (ref_state, ref_data) = _checkpoint(multi, step), _checkpoint(straight, step)
        assert data == {"batch_index": step, "skipped": by_process[step], "seed": 0}
        assert ref_data == {"batch_index": step, "skipped": [step], "seed": 0}
        assert int(state["step"]) == step
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=1e-6),
                     state, ref_state)

    # the widened run: two processes on from the one-process checkpoint of step STEPS
    end = STEPS + MORE
    (step, loss), = _scalars(widened)
    assert step == end and _scalars(straight)[-1][0] == end
    np.testing.assert_allclose(loss, _scalars(straight)[-1][1], rtol=0, atol=1e-6)
    (state, data), (ref_state, ref_data) = _checkpoint(widened, end), _checkpoint(straight, end)
    assert ref_data == {"batch_index": end, "skipped": [end], "seed": 0}
    # the one-process count went to process 0, which met the unreadable image once more
    assert data == {"batch_index": end, "skipped": [end, 0], "seed": 0}
    assert int(state["step"]) == end
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=1e-6),
                 state, ref_state)
