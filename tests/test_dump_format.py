"""tools/dump_reference.py's contract without torch: its fixture format round-trips through
the parity runner (a set made with our own models in the reference's place), and its
argument errors are one clear line."""
import json
import pathlib
import subprocess
import sys

import numpy as np

from resshift_jax import parity
from resshift_jax.parity.kinds import Context
from resshift_jax.sampling import make_restore_fn

ROOT = pathlib.Path(__file__).resolve().parents[1]
DUMP = ROOT / "tools" / "dump_reference.py"


def _own_fixture_set(parity_dir, out: pathlib.Path):
    """What the dumper writes, computed by the project instead of the reference."""
    entries = json.loads((parity_dir / "fixtures.json").read_text())
    unet_e, vq_e, diff = entries["unet_sr_tiny"], entries["vq_f4_tiny"], entries["sampler_tiny"]["diffusion"]
    restorer, params = Context(parity_dir, entries, "float32").restorer(entries["sampler_tiny"])
    rng = np.random.default_rng(0)
    lq = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    noises = (rng.standard_normal((1, 32, 32, 3)).astype(np.float32),
              rng.standard_normal((4, 1, 32, 32, 3)).astype(np.float32))
    chain = make_restore_fn(restorer, return_chain=True)(params, lq, noises=noises)
    io = {k: parity.nchw(v) for k, v in chain.items()}
    io.update(lq=parity.nchw(lq), noise_prior=parity.nchw(noises[0]), noise_steps=parity.nchw(noises[1]))
    np.savez(out / "sampler_photo_io.npz", **io)
    fixtures = {
        "unet": {"kind": "unet", "params": unet_e["params"], "io": "unet_io.npz",
                 "checkpoint": str(parity_dir / unet_e["checkpoint"])},
        "vq": {"kind": "vq", "params": vq_e["params"], "io": "vq_io.npz",
               "checkpoint": str(parity_dir / vq_e["checkpoint"])},
        "sampler_photo": {"kind": "sampler", "diffusion": diff, "unet": "unet", "autoencoder": "vq",
                          "io": "sampler_photo_io.npz"}}
    for name in ("unet", "vq"):
        src = np.load(parity_dir / entries[f"{name}_sr_tiny" if name == "unet" else "vq_f4_tiny"]["io"])
        np.savez(out / f"{name}_io.npz", **dict(src))
    (out / "fixtures.json").write_text(json.dumps(fixtures))


def test_format_round_trips_and_perturbation_fails(parity_dir, tmp_path, capsys):
    _own_fixture_set(parity_dir, tmp_path)
    assert parity.main([str(tmp_path), "--report", str(tmp_path / "r.md")]) == 0
    report = (tmp_path / "r.md").read_text()
    assert "| sampler_photo | 3 |" in report and "PSNR" in report
    io = dict(np.load(tmp_path / "sampler_photo_io.npz"))
    io["samples"][2] += 0.01
    np.savez(tmp_path / "sampler_photo_io.npz", **io)
    assert parity.main([str(tmp_path)]) == 1


def _run(*args):
    return subprocess.run([sys.executable, str(DUMP), *args], capture_output=True, text=True,
                          timeout=120)


def test_argument_errors_are_one_clear_line(tmp_path):
    proc = _run("--resshift", str(tmp_path / "nowhere"), "--task", "realsr", "--random_weights", "0",
                "-i", str(tmp_path), "-o", str(tmp_path / "o"))
    assert proc.returncode != 0 and "not a ResShift checkout" in proc.stderr
    assert "Traceback" not in proc.stderr
    fake = tmp_path / "ResShift"
    (fake / "models").mkdir(parents=True)
    (fake / "configs").mkdir()
    (fake / "models" / "unet.py").write_text("")
    proc = _run("--resshift", str(fake), "--task", "inpaint_face", "--random_weights", "0",
                "-i", str(tmp_path), "-o", str(tmp_path / "o"))
    assert "needs --mask_path" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run("--resshift", str(fake), "--task", "faceir", "-i", str(tmp_path), "-o", str(tmp_path))
    assert proc.returncode == 2 and "--weights" in proc.stderr  # one of the two is required
    proc = _run("--resshift", str(fake), "--task", "realsr", "--random_weights", "0",
                "-i", str(tmp_path), "-o", str(tmp_path), "--set", "diffusion.params.steps")
    assert proc.returncode == 2 and "expected KEY=VALUE" in proc.stderr
