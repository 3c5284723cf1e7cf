"""Shared benchmark plumbing: timing, released architectures, the PyTorch side in a subprocess.

The PyTorch reference never runs in the project's environment: `reference_side.py` is
started with `--torch_python` (a Python that has torch, e.g. a separate venv) and imports
the reference from the user's checkout given by `--reference`.
"""
import json
import pathlib
import platform
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
                        help="a Python with torch (and timm, einops, omegaconf) for the reference")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for both sides (0: all cores)")
