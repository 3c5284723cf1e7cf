"""bench/cross_compile.py: the device suite's programs compiled for a GPU this machine lacks.

CI has no CUDA plugin, so the compile-only H200 itself is exercised by hand
(`python -m bench.device_suite --cross_compile`, docs/benchmarks.md); here the same code
compiles for this machine's CPU device from shapes alone, and the GPU description's
memory and the run's memory share are checked against what the GPU run uses.
"""
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench import cross_compile, device_sections

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _step(state, batch, mask, key):
    """A donating step with the argument kinds of the suite's programs: a dict, None, a key."""
    noise = jax.random.normal(key, batch.shape)
    new = {"w": state["w"] + jnp.sum(batch + noise) * (1 if mask is None else mask)}
    return new, jnp.sum(new["w"])


def _args():
    return ({"w": jnp.ones((256, 256))}, jnp.ones((4, 8)), None, jax.random.key(0))


def test_compile_for_builds_the_program_from_shapes_with_its_donation():
    device = jax.devices()[0]
    donated = jax.jit(_step, donate_argnums=0)
    _, compiled = cross_compile.compile_for(donated, _args(), device, donate_argnums=(0,))
    _, kept = cross_compile.compile_for(donated, _args(), device)
    assert compiled.memory_analysis().alias_size_in_bytes == 256 * 256 * 4
    assert kept.memory_analysis().alias_size_in_bytes == 0
    abstract = cross_compile.abstract_on(_args(), device)
    assert abstract[2] is None and abstract[1].sharding.device_set == {device}
    assert jax.dtypes.issubdtype(abstract[3].dtype, jax.dtypes.prng_key)
    expected = jax.jit(_step)(*_args())
    np.testing.assert_array_equal(kept(*_args())[1], expected[1])


def test_the_h200_description_and_the_runs_memory_share():
    """143,771 MiB as nvidia-smi reports an H200; 92% of it, as bench/device_run.sh gives JAX."""
    assert cross_compile.target_memory_bytes() == 143771 * 2 ** 20
    run_sh = (ROOT / "bench" / "device_run.sh").read_text()
    share = re.search(r"XLA_PYTHON_CLIENT_MEM_FRACTION:-([0-9.]+)", run_sh).group(1)
    assert float(share) == cross_compile.MEM_FRACTION
    limit = int(cross_compile.MEM_FRACTION * cross_compile.target_memory_bytes())
    assert cross_compile.fits(limit)[0] and not cross_compile.fits(limit + 1)[0]
    assert cross_compile.fits(limit)[1] == pytest.approx(129.17, abs=0.01)


def test_target_device_is_an_h200_or_one_line_naming_the_plugin():
    """With JAX's CUDA plugin a compile-only H200; without (CI), the install line."""
    cross_compile.target_device.cache_clear()
    try:
        device = cross_compile.target_device()
    except RuntimeError as err:
        assert f"pip install 'jax[cuda13]=={jax.__version__}'" in str(err)
        assert "\n" not in str(err)
    else:
        assert device.device_kind == "NVIDIA H200" and device.platform == "gpu"


def test_a_cross_compiled_row_gives_the_programs_bytes_and_whether_they_fit(monkeypatch,
                                                                            tmp_path):
    """lower_only with a target: compiled, not run; program GiB from the compiled program,
    'would not fit' above the run's share of the target's memory."""
    monkeypatch.setattr(cross_compile, "target_device", lambda target: jax.devices()[0])
    for memory, status in ((2 ** 30, "compiled for cpu"), (2 ** 18, "would not fit")):
        target = tmp_path / f"{memory}.txtpb"
        target.write_text(f"gpu_device_info {{\n  device_memory_size: {memory}\n}}\n")
        rows = []
        flops = device_sections.lower_only(
            rows.append, "train", "step", jax.jit(_step, donate_argnums=0), _args(),
            dtype="float32", batch=4, note="MSE", platform="cpu", target=str(target),
            donate_argnums=(0,))
        (row,) = rows
        needs = row["program_gib"] * 2 ** 30
        assert row["status"] == status and row["compile_s"] > 0, row
        assert 256 * 256 * 4 < needs < 2 * 256 * 256 * 4, row  # w once: donated to the output
        assert row["note"].startswith("MSE; ") and "GiB; " in row["note"]
        assert re.search(r"; \d+ kernels a call; largest array", row["note"]), row["note"]
        assert flops and flops > 0
