"""Exported programs: the CLI lowers the tiny chain for cpu, cuda and tpu; the cpu program,
deserialized, restores as sample.py's ImageRestorer (sampling.restore) does."""
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs.tiny_test import get_config
from resshift_jax import builder
from resshift_jax.exported import ExportedRestorer
from resshift_jax.noise_keys import image_key, seed_key

ROOT = pathlib.Path(__file__).resolve().parents[1]


def export(out, *flags):
    return subprocess.run(
        [sys.executable, "-m", "resshift_jax.export", "--config", "configs/tiny_test.py",
         "--out", str(out), *flags], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    proc = export(out, "--platforms", "cpu,cuda,tpu", "--batch_sizes", "2", "--chop_size", "64")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def loaded(export_dir):
    return ExportedRestorer.load(export_dir)


def test_one_program_for_every_platform(export_dir):
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["platforms"] == ["cpu", "cuda", "tpu"] and manifest["size"] == 32
    assert manifest["noise_canvas"] == 64
    program = jax.export.deserialize(bytearray((export_dir / "restore_b2.jaxexport").read_bytes()))
    assert program.platforms == ("cpu", "cuda", "tpu")
    assert [a.shape for a in program.in_avals[-2:]] == [(2, 32, 32, 3), (2, 2)]
    assert program.out_avals[0].shape == (2, 128, 128, 3)


def test_cpu_program_restores_as_sample_py(loaded):
    """A 20x27 image (padded to the 32x32 program, batch padded to 2) against sample.py's
    ImageRestorer at the --chop_size exported for (64: its noise is drawn on a 64 canvas)."""
    config = get_config()
    restorer, params = builder.build_restorer(config)
    image = np.asarray(jax.random.uniform(jax.random.key(1), (20, 27, 3)))
    want = builder.image_restorer(config, restorer, params, chop_size=64, chop_stride=48,
                                  pad="reference").restore_batch(image[None], names=["photo.png"])[0]
    got = loaded(image, name="photo.png")
    assert got.shape == (80, 108, 3)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_tiles_do_not_depend_on_batching(loaded):
    image = np.asarray(jax.random.uniform(jax.random.key(2), (40, 36, 3)))  # 2 x 2 tiles
    one_by_one = loaded(image)
    assert one_by_one.shape == (160, 144, 3) and 0 <= one_by_one.min() <= one_by_one.max() <= 1
    two_at_a_time = dataclasses.replace(loaded, batch=2)  # the same compiled program
    np.testing.assert_allclose(two_at_a_time(image), one_by_one, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="larger than every exported batch"):
        loaded.run(np.zeros((3, 32, 32, 3), np.float32), np.zeros((3, 2), np.uint32))


def test_bad_input_is_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="no manifest.json"):
        ExportedRestorer.load(tmp_path)
    proc = export(tmp_path, "--platforms", "cpu,gpu")
    assert proc.returncode == 2 and "unknown ['gpu']" in proc.stderr.strip().splitlines()[-1]


def test_seeds_keep_all_64_bits_and_the_loader_keys_as_sample_py():
    """Seeds key as `jax.random.key` does with 64-bit types on (off, it keeps 32 bits: 2**32 + 5
    seeded as 5), those below 2**32 as before; the exported loader's image keys are sample.py's,
    for names that are not UTF-8 too."""
    seeds = (0, 5, 2**32 - 1, 2**32 + 5, -1, -2**63, 2**63 - 1)
    with jax.enable_x64(True):
        wide = [jax.random.key_data(jax.random.key(s)) for s in seeds]
    ours = [jax.random.key_data(seed_key(s)) for s in seeds]
    np.testing.assert_array_equal(ours, wide)
    assert len({tuple(k.tolist()) for k in ours}) == len(seeds)
    np.testing.assert_array_equal(ours[1], jax.random.key_data(jax.random.key(5)))
    name = os.fsdecode(b"caf\xe9.png")
    loader = ExportedRestorer({"seed": 2**32 + 5}, {}, {}).image_key(name)
    assert np.array_equal(jax.random.key_data(loader),
                          jax.random.key_data(image_key(2**32 + 5, name)))


def test_loader_imports_no_model_code():
    code = ("import sys, resshift_jax.exported; print(sorted(m for m in sys.modules "
            "if m.startswith(('flax', 'resshift_jax', 'ml_collections'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.split() == ["['resshift_jax',", "'resshift_jax.exported',",
                                   "'resshift_jax.noise_keys',", "'resshift_jax.tiling']"], proc.stderr


def test_overwrite_replaces_only_an_earlier_export(tmp_path):
    assert export(tmp_path, "--platforms", "cpu", "--batch_sizes", "1,2").returncode == 0
    (tmp_path / "notes.txt").write_text("mine")
    refused = export(tmp_path, "--platforms", "cpu", "--batch_sizes", "1")
    assert refused.returncode == 2 and "--overwrite" in refused.stderr.strip().splitlines()[-1]
    assert (tmp_path / "restore_b2.jaxexport").exists()
    proc = export(tmp_path, "--platforms", "cpu", "--batch_sizes", "1", "--overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tpu" not in proc.stderr  # no log line of the backend probing
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json", "notes.txt", "restore_b1.jaxexport", "weights.safetensors"]


@pytest.mark.parametrize("flags, message", [
    (("--size", "33"), "--size 33: this model needs a positive multiple of 32"),
    (("--size", "0"), "--size 0: this model needs a positive multiple of 32"),
    (("--size", "-32"), "--size -32: this model needs a positive multiple of 32"),
    (("--stride", "0"), "--stride 0: need 0 < stride <= size (32)"),
])
def test_bad_tiles_stop_before_work(tmp_path, flags, message):
    proc = export(tmp_path / "out", *flags)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {message}")
    assert proc.stderr.count("\n") == 1


def test_bad_out_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("mine")
    proc = export(tmp_path, "--overwrite")
    assert proc.returncode == 2 and "holds no earlier export" in proc.stderr
    assert (tmp_path / "afile").read_text() == "mine"
    for out in (tmp_path / "afile", tmp_path / "afile" / "x"):
        proc = export(out)
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {out}"), proc.stderr
        assert proc.stderr.count("\n") == 1


# one config per distinct input of the size rule (realsr_v3 stands for v1, bicsr, sinsr_v1;
# inpaint_face for inpaint_imagenet: the same levels, windows, autoencoder, scale and LQ size)
SIZE_RULE_CONFIGS = ("realsr_v3", "realsr_x2", "faceir", "inpaint_face", "demo", "tiny_test",
                     "tiny_inpaint_test")


@pytest.mark.parametrize("name", SIZE_RULE_CONFIGS)
def test_size_multiple_is_exactly_what_the_chain_accepts(name):
    """`size_multiple`, derived from the architecture, against the traced chain of every
    architecture (shapes only): m gives an sf-times-larger output, m/2 and 3m/2 fail to trace,
    so export's size check neither refuses a size that works nor passes one that breaks."""
    import importlib

    import jax.numpy as jnp
    from flax import traverse_util

    from resshift_jax.export import chain_program, size_multiple
    config = importlib.import_module(f"configs.{name}").get_config()
    restorer = builder.restorer_from_config(config, jnp.float32)
    params = jax.eval_shape(lambda key: builder.random_params(restorer, key), jax.random.key(0))
    weights = {"/".join(k): v for k, v in traverse_util.flatten_dict(params).items()}
    has_mask = bool(config.model.get("cond_mask", False))
    program = chain_program(restorer, has_mask)

    def out_shape(size):
        args = [weights, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
                jax.ShapeDtypeStruct((1, 2), jnp.uint32)]
        if has_mask:
            args.append(jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32))
        return jax.eval_shape(program, *args).shape

    m = size_multiple(config)
    assert out_shape(m) == (1, config.sf * m, config.sf * m, 3)
    for size in (m // 2, 3 * m // 2):
        with pytest.raises(TypeError, match="cannot reshape"):
            out_shape(size)
