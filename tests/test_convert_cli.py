"""`python -m resshift_jax.convert`: a converted file loads without the .pth, identically."""
import json

import jax
import numpy as np
import pytest

from resshift_jax.convert.__main__ import main
from resshift_jax.convert.loading import build_model, load_params, read_converted


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
