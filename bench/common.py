"""Shared benchmark plumbing: timing, released architectures, the PyTorch side in a subprocess.

The PyTorch reference never runs in the project's environment: `reference_side.py` is
started with `--torch_python` (a Python that has torch, e.g. a separate venv) and imports
the reference from the user's checkout given by `--reference`.
"""
import json
import math
import pathlib
import platform
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYOUTS = ROOT / "tests" / "fixtures" / "parity" / "checkpoint_layouts.json"


def released_params(checkpoint: str) -> dict:
    """The architecture params of a released checkpoint, e.g. 'resshift_realsrx4_s4_v3.pth'."""
    return json.loads(LAYOUTS.read_text())[checkpoint]["params"]


def median_time(fn, *, warmup: int = 1, iters: int = 3) -> float:
    """Median wall seconds of `fn()` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def fake_init(module, *inputs, seed: int = 0) -> dict:
    """Random float32 params of `module` for benchmarks, without compiling its init (XLA
    takes minutes over a large init program): shapes by eval_shape, values from numpy
    (kernels ~ N(0, 1/fan_in), 1-D scales 1, other 1-D params 0)."""
    import jax
    import numpy as np
    shapes = jax.eval_shape(module.init, jax.random.key(0), *inputs)["params"]
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if len(leaf.shape) >= 2:
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.standard_normal(leaf.shape, np.float32) / np.float32(np.sqrt(fan_in))
        name = str(getattr(path[-1], "key", path[-1]))
        return np.full(leaf.shape, 1.0 if name == "scale" else 0.0, np.float32)
    return jax.tree_util.tree_map_with_path(fill, shapes)


def fake_params(restorer, seed: int = 0) -> dict:
    """`fake_init` params {"unet"[, "vq"]} of a Restorer (see builder.random_params)."""
    import jax.numpy as jnp
    from resshift_jax.models.unet import example_inputs
    params = {"unet": fake_init(restorer.unet, *example_inputs(restorer.unet), seed=seed)}
    if restorer.vq is not None:
        params["vq"] = fake_init(restorer.vq, jnp.zeros((1, 32, 32, 3), jnp.float32), seed=seed + 1)
    return params


def xla_flops(stage):
    """FLOPs of a lowered or compiled program by XLA's cost analysis, or None where the
    backend has none (a lowered program's needs the in-tree client: not CUDA's plugin).

    XLA counts a loop body once, whatever its trip count: measure loop-free programs (the
    chain with `use_scan=False`; batches whose attention is not blocked) and scale.
    """
    try:
        cost = stage.cost_analysis()
    except Exception:  # noqa: BLE001  (a backend without cost analysis)
        return None
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def cpu_client_flops(lowered):
    """XLA's cost analysis of a lowered program's HLO on the CPU client (the CUDA plugin's
    client has none before compiling); None where this jax lacks the internals."""
    try:
        from jax._src import xla_bridge
        from jax._src.lib import _jax
        module = lowered._lowering.hlo().as_hlo_module()
        flops = _jax.hlo_module_cost_analysis(xla_bridge.get_backend("cpu"), module).get("flops")
    except Exception:  # noqa: BLE001  (internals moved: fall back to compiling)
        return None
    return float(flops) if flops and flops > 0 else None


def program_flops(jitted, args, platform=None) -> tuple:
    """(FLOPs, how) of `jitted(*args)` lowered for `platform` (default: the first device's),
    without compiling where XLA counts a lowered program (the platform's client, else the
    CPU client's count of that platform's HLO), else compiled."""
    import jax
    platform = platform or {"gpu": "cuda"}.get(jax.devices()[0].platform, jax.devices()[0].platform)
    lowered = jitted.trace(*args).lower(lowering_platforms=(platform,))
    flops = xla_flops(lowered) if platform == jax.devices()[0].platform else None
    if flops:
        return flops, "lowered"
    flops = cpu_client_flops(lowered)
    if flops:
        return flops, f"lowered for {platform}, counted on the CPU client"
    return xla_flops(jitted.lower(*args).compile()), "compiled"


def largest_array_bytes(mlir: str) -> int:
    """Bytes of the largest tensor type in a StableHLO module's text (an array the program
    holds at once: a lowered program's memory hint, where only compiling gives the total)."""
    sizes = {"f32": 4, "bf16": 2, "i32": 4, "f16": 2, "i64": 8, "i1": 1}
    best = 0
    for dims, kind in re.findall(r"tensor<((?:\d+x)+)(\w+)>", mlir):
        best = max(best, math.prod(int(d) for d in dims[:-1].split("x")) * sizes.get(kind, 4))
    return best


def program_bytes(compiled):
    """Device bytes a compiled program needs (arguments + outputs + temporaries - aliased)."""
    try:
        m = compiled.memory_analysis()
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                   - m.alias_size_in_bytes)
    except Exception:  # noqa: BLE001  (a backend without memory analysis)
        return None


def device_peak_bytes():
    """The first device's peak bytes in use so far in this process (None on CPU)."""
    import jax
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def machine() -> str:
    import jax
    dev = jax.devices()[0]
    return f"{platform.node()} {platform.machine()} {dev.platform}:{dev.device_kind} x{jax.device_count()}"


def run_reference(torch_python: str, reference: str, what: str, **kwargs) -> dict:
    """Run `reference_side.py WHAT` under `torch_python`; returns its JSON result."""
    cmd = [torch_python, str(ROOT / "bench" / "reference_side.py"), what, "--reference", reference]
    for key, value in kwargs.items():
        cmd += [f"--{key}", json.dumps(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"reference run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_reference_args(parser) -> None:
    parser.add_argument("--reference", help="path to a checkout of zsyOAOA/ResShift: also time it")
    parser.add_argument("--torch_python", default=sys.executable,
                        help="a Python with torch (and timm, einops, PyYAML) for the reference")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for both sides (0: all cores)")
