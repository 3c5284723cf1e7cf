"""`python -m resshift_jax.convert`: a converted file loads without the .pth, identically."""
import json

import jax
import numpy as np
import pytest

from resshift_jax.convert.__main__ import main
from resshift_jax.convert.loading import build_model, load_params, read_converted
from resshift_jax.convert.pth import CheckpointError


def test_convert_then_load_identical(parity_dir, tmp_path, capsys):
    entry = json.loads((parity_dir / "fixtures.json").read_text())["vq_f4_tiny"]
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(entry["params"]))
    out = tmp_path / "vq.safetensors"
    assert main([str(parity_dir / "vq_f4_tiny.pth"), str(out), "--kind", "vq", "--arch", str(arch)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["params"] == entry["params"]
    kind, params_meta, _ = read_converted(out)
    assert kind == "vq" and params_meta == entry["params"]
    model = build_model("vq", entry["params"])
    a = load_params("vq", parity_dir / "vq_f4_tiny.pth", model)
    b = load_params("vq", out, model)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(SystemExit):  # never overwrites without --overwrite
        main([str(parity_dir / "vq_f4_tiny.pth"), str(out), "--kind", "vq", "--arch", str(arch)])
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("kind,name,change", [("vq", "vq_f4_tiny", {"n_embed": 128}),
                                               ("unet", "unet_sr_tiny", {"model_channels": 64})])
def test_converted_weights_of_another_architecture_are_refused_at_load(
        parity_dir, tmp_path, kind, name, change):
    """As a .pth is: one CheckpointError naming the file, before anything runs (not a Flax
    shape error per image later)."""
    entry = json.loads((parity_dir / "fixtures.json").read_text())[name]
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(entry["params"]))
    out = tmp_path / f"{kind}.safetensors"
    assert main([str(parity_dir / f"{name}.pth"), str(out), "--kind", kind, "--arch", str(arch)]) == 0
    other = build_model(kind, {**entry["params"], **change})
    for path in (parity_dir / f"{name}.pth", out):
        with pytest.raises(CheckpointError) as error:
            load_params(kind, path, other)
        assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_wrong_kind_is_a_clear_error(parity_dir, tmp_path, capsys):
    entry = json.loads((parity_dir / "fixtures.json").read_text())["unet_sr_tiny"]
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(entry["params"]))
    assert main([str(parity_dir / "vq_f4_tiny.pth"), str(tmp_path / "x.safetensors"),
                 "--kind", "unet", "--arch", str(arch)]) == 1
    err = capsys.readouterr().err
    assert "vq_f4_tiny.pth" in err and "missing" in err


def test_bad_arch_file_is_one_line(parity_dir, tmp_path, capsys):
    """A missing, non-JSON or non-object --arch file: status 2, one line naming it."""
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    a_list = tmp_path / "list.json"
    a_list.write_text("[1, 2]")
    for arch, problem in ((tmp_path / "missing.json", "no such architecture file"),
                          (bad_json, "not a readable JSON file"), (a_list, "expected a JSON object")):
        out = tmp_path / "out.safetensors"
        assert main([str(parity_dir / "vq_f4_tiny.pth"), str(out), "--kind", "vq",
                     "--arch", str(arch)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(arch) in err and problem in err, err
        assert not out.exists()


def test_existing_sidecar_is_not_replaced(parity_dir, tmp_path, capsys):
    out = tmp_path / "vq.safetensors"
    out.with_suffix(".json").write_text("mine")
    with pytest.raises(SystemExit) as stop:
        main([str(parity_dir / "vq_f4_tiny.pth"), str(out), "--kind", "vq",
              "--config", "configs/tiny_test.py"])
    assert stop.value.code == 2 and "vq.json: exists" in capsys.readouterr().err
    assert out.with_suffix(".json").read_text() == "mine" and not out.exists()


def test_missing_folder_or_truncated_source_is_one_line(parity_dir, tmp_path, capsys):
    for src, problem in ((tmp_path / "nothere.pth", "no such file"),
                         (tmp_path, "is a folder")):
        with pytest.raises(SystemExit) as stop:
            main([str(src), str(tmp_path / "out.safetensors"), "--kind", "vq",
                  "--config", "configs/tiny_test.py"])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert stop.value.code == 2 and f"{src}: {problem}" in err, err
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((parity_dir / "vq_f4_tiny.pth").read_bytes()[:20000])
    assert main([str(truncated), str(tmp_path / "out.safetensors"), "--kind", "vq",
                 "--config", "configs/tiny_test.py"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {truncated}: truncated, not a complete zip archive (no central "
                   "directory); fetch or copy it again")


def test_an_earlier_conversions_json_is_an_arch_file_and_bad_ones_are_one_line(
        parity_dir, tmp_path, capsys):
    """The .json written beside a conversion serves as --arch; a JSON of other params, a
    pixel-space config for the autoencoder, or an output whose .json is the --arch file
    itself are refused in one line, status 2, nothing written."""
    first = tmp_path / "a.safetensors"
    assert main([str(parity_dir / "vq_f4_tiny.pth"), str(first), "--kind", "vq",
                 "--config", "configs/tiny_test.py"]) == 0
    again = tmp_path / "b.safetensors"
    assert main([str(parity_dir / "vq_f4_tiny.pth"), str(again), "--kind", "vq",
                 "--arch", str(first.with_suffix(".json"))]) == 0
    assert read_converted(again)[1] == read_converted(first)[1]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"embed_dim": 3, "channels": 9}))
    capsys.readouterr()
    for args, says in (
            (["--kind", "unet", "--arch", str(first.with_suffix(".json"))], "describes vq weights"),
            (["--kind", "vq", "--arch", str(other)], "not vq architecture params"),
            (["--kind", "vq", "--config", "configs/demo.py"], "has no autoencoder")):
        assert main([str(parity_dir / "vq_f4_tiny.pth"), str(tmp_path / "c.safetensors"),
                     *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and says in err, err
    assert not (tmp_path / "c.safetensors").exists()
    before = other.read_text()
    with pytest.raises(SystemExit):
        main([str(parity_dir / "vq_f4_tiny.pth"), str(tmp_path / "other.safetensors"),
              "--kind", "vq", "--arch", str(other), "--overwrite"])
    assert "would replace the --arch file" in capsys.readouterr().err
    assert other.read_text() == before
