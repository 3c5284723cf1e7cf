"""Released weights fetched by name, converted once, reloaded from the conversion."""
import hashlib
import json

import jax
import numpy as np
import pytest

from resshift_jax import inference, weights

ARCH_KEY = "unet_sr_tiny"


@pytest.fixture
def fake_release(monkeypatch, parity_dir):
    """A 'released' checkpoint served from a file:// URL with its true sha256."""
    src = parity_dir / "unet_sr_tiny.pth"
    entry = weights.Checkpoint("resshift_tiny.pth", src.as_uri())
    monkeypatch.setattr(weights, "CHECKPOINTS", {"tiny": entry})
    monkeypatch.setattr(weights, "SHA256", {"tiny": hashlib.sha256(src.read_bytes()).hexdigest()})
    return src


def test_download_convert_once_then_load_conversion(fake_release, parity_dir, tmp_path, monkeypatch):
    arch = json.loads((parity_dir / "fixtures.json").read_text())[ARCH_KEY]["params"]
    _, params = inference.load_network("unet", arch, "tiny", tmp_path)
    assert (tmp_path / "resshift_tiny.pth").read_bytes() == fake_release.read_bytes()
    cached = tmp_path / "resshift_tiny.safetensors"
    assert cached.is_file()

    monkeypatch.setattr(inference, "load_params", _only_safetensors(inference.load_params))
    _, again = inference.load_network("unet", arch, "tiny", tmp_path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _only_safetensors(load):
    def wrapped(kind, path, model, *args):
        assert str(path).endswith(".safetensors"), f"read {path} instead of the conversion"
        return load(kind, path, model, *args)
    return wrapped


def test_wrong_sha256_leaves_nothing(fake_release, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "SHA256", {"tiny": "0" * 64})
    with pytest.raises(weights.WeightsError, match="sha256 mismatch"):
        inference.resolve_checkpoint("tiny", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_file_names_itself(tmp_path):
    with pytest.raises(inference.CheckpointError, match="missing.pth"):
        inference.resolve_checkpoint(str(tmp_path / "missing.pth"), tmp_path)
