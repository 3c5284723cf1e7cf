"""The parity runner on the chain fixtures (sampler, train_loss) and its failure modes."""
import json
import shutil

import numpy as np
import pytest

from resshift_jax import parity

CHAIN_SET = ("unet_sr_tiny", "vq_f4_tiny", "sampler_tiny", "train_loss_tiny")


def _subset(parity_dir, dest, names, edit=None):
    entries = json.loads((parity_dir / "fixtures.json").read_text())
    chosen = {n: entries[n] for n in names}
    for entry in chosen.values():
        for key in ("io", "checkpoint"):
            if key in entry:
                shutil.copy(parity_dir / entry[key], dest / entry[key])
    if edit:
        edit(dest, chosen)
    (dest / "fixtures.json").write_text(json.dumps(chosen))
    return dest


def test_sampler_and_train_loss_fixtures_pass(parity_dir, tmp_path):
    root = _subset(parity_dir, tmp_path, CHAIN_SET)
    rows = parity.run_fixtures(root, save_outputs=tmp_path / "out")
    by_fixture = {(r.fixture, r.array): r for r in rows}
    for key in [("sampler_tiny", "samples"), ("sampler_tiny", "pred_xstart"),
                ("sampler_tiny", "out"), ("train_loss_tiny", "mse"),
                ("train_loss_tiny", "pred_zstart"), ("vq_f4_tiny", "indices")]:
        assert by_fixture[key].status == "pass", by_fixture[key]
    assert by_fixture[("sampler_tiny", "samples")].rel < 2e-4
    assert parity.passed(rows)
    saved = np.load(tmp_path / "out" / "sampler_tiny.npz")
    assert saved["samples"].shape == (4, 2, 3, 32, 32)


def test_perturbed_reference_fails_with_exit_status(parity_dir, tmp_path):
    def perturb(dest, entries):
        io = dict(np.load(dest / "unet_sr_tiny_io.npz"))
        io["out"] = io["out"] + 1e-3
        np.savez(dest / "unet_sr_tiny_io.npz", **io)
    root = _subset(parity_dir, tmp_path, ["unet_sr_tiny"], perturb)
    assert parity.main([str(root)]) == 1


def test_unknown_kind_and_missing_file_never_pass(parity_dir, tmp_path, capsys):
    (tmp_path / "fixtures.json").write_text(json.dumps({
        "odd": {"kind": "teleport"}, "gone": {"kind": "bicubic", "scales": [2], "io": "nope.npz"}}))
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        parity.run_fixtures(tmp_path)
    (tmp_path / "fixtures.json").write_text(json.dumps({"odd": {"kind": "teleport"}}))
    assert parity.main([str(tmp_path)]) == 1
    assert "unknown kind 'teleport'" in capsys.readouterr().out
