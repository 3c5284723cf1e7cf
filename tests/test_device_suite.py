"""bench/device_suite.py's dry run: every section runs its code at tiny sizes and leaves a row.

The GPU run must not be spent debugging: here each section (parity, chain, tile, train,
reference, onestep, folder: three made-up crops end to end, cold and warm compilation
cache; eval: the metrics) runs as it will there, in its own process, with the packages the GPU machine lacks
made unimportable; a failing or overlong section is isolated.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTIONS = ("parity", "chain", "tile", "train", "reference", "onestep", "folder", "eval")
# not on the GPU image (bench/README.md): the suite must not need them. Hidden from the path
# finder, they look absent as there: find_spec gives None (etils asks it for tensorflow when
# JAX opens its compilation cache) and importing them raises ModuleNotFoundError
BLOCKER = """import sys
from importlib.machinery import PathFinder
class _NotOnTheGpuImage(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {"clu", "tensorflow", "tensorflow_datasets", "omegaconf"}:
            return None
        return PathFinder.find_spec(name, path, target)
sys.meta_path[:] = [_NotOnTheGpuImage if f is PathFinder else f for f in sys.meta_path]
"""


def _suite(tmp_path, *args):
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
        filter(None, [str(site), env.get("PYTHONPATH")])))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bench.device_suite", "--out", str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads((out / "device_suite.json").read_text())
    assert (out / "device_suite.md").read_text().startswith("# device suite")
    assert (out / "device_suite.log").is_file()
    return data, proc.stdout


def _by_section(data):
    rows = {}
    for row in data["rows"]:
        rows.setdefault(row["section"], []).append(row)
    return rows


def test_dry_run_every_section_leaves_a_row(tmp_path):
    reference = tmp_path / "ref"
    reference.mkdir()
    data, stdout = _suite(tmp_path, "--dry_run", "--jobs", "2", "--reference", str(reference))
    rows = _by_section(data)
    assert set(rows) == set(SECTIONS)
    # CI has no torch; with torch, the empty folder is no checkout (tried by hand: README)
    expected = "skipped: no torch" if importlib.util.find_spec("torch") is None else "error"
    references = rows["reference"] + rows["folder"][-1:]
    problems = [r for r in data["rows"] if r["status"] not in ("ok", "pass")
                and not r["status"].startswith("skipped") and r not in references]
    assert not problems, problems
    assert rows["parity"][-1]["name"] == "all fixtures" and rows["parity"][-1]["status"] == "pass"
    for section in ("chain", "tile", "train", "onestep"):
        for row in rows[section]:
            assert row["seconds"] > 0 and row["program_gib"] > 0, row
    assert [r["name"] for r in rows["eval"]] == ["psnr", "ssim", "lpips", "clipiqa", "musiq",
                                                 "all five"]
    assert all(r["images_per_s"] > 0 and r["batch"] == 2 for r in rows["eval"]), rows["eval"]
    for section in ("chain", "train", "onestep"):   # FLOPs counted: MFU on every timed row
        assert all(r["mfu"] > 0 and r["tflops"] > 0 for r in rows[section]), rows[section]
    assert {f["section"] for f in data["flops"]} == {"chain", "train", "onestep"}
    assert [r["status"] for r in references] == [expected, expected]
    # the folder end to end: the dry run's three crops, one program, then read back
    cold, warm = rows["folder"][:-1]
    assert (cold["name"], warm["name"]) == ("ours, cold cache", "ours, warm cache")
    for row in (cold, warm):
        assert row["images"] == row["batch"] == 3 and row["compilations"] == 1, row
        assert row["seconds"] > 0 and row["compile_s"] > 0 and row["process_s"] > row["seconds"]
    assert cold["cache_written"] > 0 and warm["cache_written"] == 0, (cold, warm)
    assert data["meta"]["backend"] == "cpu" and data["dry_run"]
    assert [t["what"] for t in data["targets"]][0].startswith("chain bf16 MFU")
    assert "| section | row |" in stdout


def test_a_failing_or_overlong_section_is_isolated(tmp_path):
    """A section's error and a section's timeout become rows; the sections after them run.
    (0.1 s: not even JAX imports in it, so the parity section times out on any machine.)"""
    not_a_checkout = tmp_path / "ref"
    not_a_checkout.mkdir()
    data, _ = _suite(tmp_path, "--dry_run", "--sections", "reference,parity,folder",
                     "--reference", str(not_a_checkout), "--torch_python", "/bin/true",
                     "--budgets", "parity=0.1", "--folder", str(tmp_path / "no_crops"))
    rows = _by_section(data)
    (error,) = rows["reference"]
    assert error["status"] == "error" and "not a ResShift checkout" in error["note"]
    assert rows["parity"][-1]["status"].startswith("timeout after")
    (missing,) = rows["folder"]  # prep not run: one row saying what to run
    assert missing["status"].startswith("skipped: no PNG crops in ") and \
        missing["status"].endswith("no_crops") and "bench/device_prep.sh" in missing["note"]


def test_flops_count_the_accelerator_program_without_compiling_it():
    """The GPU run counts FLOPs of the program lowered for CUDA on the CPU client (the CUDA
    plugin counts none before compiling): there, attention over 8 x 1024 tokens is one
    product (linear in the batch); on CPU it is a loop of blocks, counted once."""
    import jax
    import jax.numpy as jnp
    from bench.common import program_flops
    from resshift_jax.models.attention import attention
    fn = jax.jit(lambda q: attention(q, q, q, jnp.float32))
    x1, x8 = jnp.ones((1, 1024, 64)), jnp.ones((8, 1024, 64))
    cuda1, how = program_flops(fn, (x1,), "cuda")
    cuda8, _ = program_flops(fn, (x8,), "cuda")
    cpu8, cpu_how = program_flops(fn, (x8,), "cpu")
    assert how == "lowered for cuda, counted on the CPU client" and cpu_how == "lowered"
    assert cuda1 >= 4 * 1024 * 1024 * 64 and cuda8 == pytest.approx(8 * cuda1, rel=1e-3)
    assert cpu8 < cuda8 / 2


def test_preflight_lowers_the_gpu_programs_for_cuda(tmp_path):
    """The GPU run's own programs (v3 sizes, batch 64, LPIPS-VGG training) lower for CUDA on
    a CPU. Their largest arrays are activations (a 2048 x 2048 x 256 float32 one is 4 GiB),
    not attention scores (275 GB whole) nor quantizer distances (8 GiB whole); the FLOPs
    counted are the released sizes' (a v3 chain image is over a TFLOP; the dry run's 0.006)."""
    data, stdout = _suite(tmp_path, "--preflight", "--jobs", "2")
    rows = _by_section(data)
    assert set(rows) == {"chain", "tile", "train", "onestep"} and data["preflight"]
    assert len(rows["chain"]) == 6 and len(rows["train"]) == 2, rows
    assert all(r["status"] == "lowered for cuda" for r in data["rows"]), data["rows"]
    assert [r["batch"] for r in rows["train"]] == [16, 64]
    assert all("LPIPS-vgg" in r["note"] for r in rows["train"])
    for row in data["rows"]:
        gib = float(row["note"].split("largest array ")[1].split(" GiB")[0])
        assert 0 < gib <= 4.1, row
    per_image = {f["section"]: f["per_image"] for f in data["flops"]}
    assert per_image["chain"] > 1e12 and per_image["train"] > per_image["chain"], per_image
    assert all("lowered for cuda" in f["how"] for f in data["flops"]), data["flops"]
    assert len(data["asks"]) == 2 and "ms per image" in data["asks"][0]
    assert "| target |" not in stdout and "What the targets ask" in stdout


def test_train_batch_out_of_memory_leaves_a_row_and_tries_half(monkeypatch):
    """x64 out of memory -> its row, then x32 (above x16, measured); x32 out of memory too ->
    no x16 again. Other errors stay the section's."""
    import dataclasses

    import jax

    from bench import device_sections, train_bench
    plan = dataclasses.replace(device_sections.Plan(**device_sections.DRY, peak_tflops=1.0),
                               train_batches=(16, 64))
    tried, fits, devices = [], {16}, jax.device_count()  # the batches are per device

    def fake_measure(emit, section, name, jitted, args, *, batch, **kwargs):
        tried.append(batch // devices)
        if batch // devices not in fits:
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying "
                                             "to allocate 9 GiB.\\nBFC allocator details")
        emit(dict(section=section, name=name, batch=batch, status="ok"))
        return 2.0 * batch
    monkeypatch.setattr(train_bench, "train_parts", lambda *a: None)
    monkeypatch.setattr(train_bench, "train_program", lambda config, parts, batch: (None,))
    monkeypatch.setattr(device_sections, "measure", fake_measure)
    for fit, expected in (({16}, [16, 64, 32]), ({16, 32}, [16, 64, 32])):
        fits, tried, rows = fit, [], []
        device_sections.train(plan, rows.append)
        assert tried == expected
        table = [(r["name"], r["status"]) for r in rows if "flops" not in r]
        assert table == [("step x16/device", "ok"), ("step x64/device", "out of memory"),
                         ("step x32/device", "ok" if 32 in fit else "out of memory")], rows
        assert "allocate 9 GiB." in rows[2]["note"] and "\n" not in rows[2]["note"]
        assert [r["flops"]["per_image"] for r in rows if "flops" in r] == [2.0]  # x16's

    def broken(*args, **kwargs):
        raise ValueError("a bug, not memory")
    monkeypatch.setattr(device_sections, "measure", broken)
    with pytest.raises(ValueError, match="a bug"):
        device_sections.train(plan, [].append)
