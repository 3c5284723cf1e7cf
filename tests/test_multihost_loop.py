"""The training loop on two real processes (localhost, gloo), a toy model: a stop request
that reaches the hosts at different steps stops both at one step, saved (a host stopping
alone hangs the other's next collective); validation, which runs on each host's own
devices, gets params it can place there (they span both hosts)."""
import json
import os
import pathlib
import socket
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = '''
import json, sys
import jax
pid, port, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(f"127.0.0.1:{port}", 2, pid)
import jax.numpy as jnp, ml_collections, numpy as np
from resshift_jax import sharding
from resshift_jax.train.checkpoints import StopFlag
from resshift_jax.train.loop import train_and_evaluate

stop = StopFlag()


class Data:  # host pid's half of a global batch of 8; host p is "preempted" at batch 8 + 3p
    index = 0

    def __next__(self):
        rng = np.random.default_rng(self.index)
        x = rng.normal(size=(8, 4)).astype(np.float32)
        if self.index == 8 + 3 * pid:
            stop()
        self.index += 1
        return {"x": x[4 * pid:4 * pid + 4], "y": x[4 * pid:4 * pid + 4, :3] * 2}

    def get_state(self):
        return {"index": self.index}

    def set_state(self, state):
        self.index = int(state["index"])


def loss(params, batch, keys, frozen):
    mse = jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)
    return mse, {"mse": mse}


evals = []


def eval_fn(params, step):  # places the params on this host's devices, as ImageRestorer does
    local = jax.device_put(params, sharding.replicated(sharding.make_mesh(jax.local_devices())))
    evals.append([step, float(jnp.sum(local["w"]))])
    return {"val/w": evals[-1][1]}


c = ml_collections.ConfigDict()
c.train = dict(lr=0.05, lr_min=0.01, lr_schedule=None, warmup_iterations=0, iterations=40,
               batch=8, microbatch=8, ema_rate=0.9, weight_decay=0.0, grad_clip=None,
               save_freq=100, log_freq=1, val_freq=2, keep_checkpoints=2, seed=0)
state = train_and_evaluate(c, workdir, init_params={"w": jnp.zeros((4, 3))}, loss_fn=loss,
                           data_iterator=Data(), frozen={}, eval_fn=eval_fn, stop=stop)
print("RESULT " + json.dumps({"step": int(state.step.addressable_data(0)), "evals": evals}),
      flush=True)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hosts_stop_together_saved_and_validate_on_their_own_devices(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    port, workdir = _free_port(), tmp_path / "workdir"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), str(port), str(workdir)],
                              cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(2)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    results = []
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.split("RESULT ", 1)[1]))
    step = results[0]["step"]
    assert results[1]["step"] == step and 2 < step < 40, results
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [step]
    assert results[0]["evals"] == results[1]["evals"]
    assert len(results[0]["evals"]) >= 2 and all(w != 0 for _, w in results[0]["evals"])
