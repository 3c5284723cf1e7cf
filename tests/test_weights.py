"""Every way to name weights: a released name (fetched, converted once), a file, a training
workdir (its EMA weights) — and the same names work for training's `model_ckpt`."""
import hashlib
import json

import jax
import numpy as np
import pytest

from configs.tiny_test import get_config
from resshift_jax import builder, download, releases, weights
from resshift_jax.train import experiment
from resshift_jax.train.checkpoints import Checkpointer
from resshift_jax.train.optim import make_optimizer
from resshift_jax.train.state import create_state

ARCH_KEY = "unet_sr_tiny"


@pytest.fixture
def fake_release(monkeypatch, parity_dir):
    """A 'released' checkpoint served from a file:// URL with its true sha256."""
    src = parity_dir / "unet_sr_tiny.pth"
    table = {"tiny": releases.Checkpoint("resshift_tiny.pth", src.as_uri())}
    for module in (weights, download):
        monkeypatch.setattr(module, "CHECKPOINTS", table)
    monkeypatch.setattr(download, "SHA256", {"tiny": hashlib.sha256(src.read_bytes()).hexdigest()})
    return src


def test_download_convert_once_then_load_conversion(fake_release, parity_dir, tmp_path, monkeypatch):
    arch = json.loads((parity_dir / "fixtures.json").read_text())[ARCH_KEY]["params"]
    _, params = weights.load_network("unet", arch, "tiny", tmp_path)
    assert (tmp_path / "resshift_tiny.pth").read_bytes() == fake_release.read_bytes()
    assert (tmp_path / "resshift_tiny.safetensors").is_file()

    original = weights.load_params

    def only_safetensors(kind, path, model, *args):
        assert str(path).endswith(".safetensors"), f"read {path} instead of the conversion"
        return original(kind, path, model, *args)
    monkeypatch.setattr(weights, "load_params", only_safetensors)
    _, again = weights.load_network("unet", arch, "tiny", tmp_path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_model_ckpt_takes_a_released_name(fake_release, tmp_path):
    """Training's model_ckpt resolves released names like the autoencoder's ckpt does."""
    config = get_config()
    config.model_ckpt = "tiny"
    restorer = builder.restorer_from_config(config)
    params = experiment.init_unet_params(config, restorer, jax.random.key(0), str(tmp_path))
    _, expected = weights.load_network("unet", config.model, str(fake_release))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_wrong_sha256_leaves_nothing(fake_release, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "SHA256", {"tiny": "0" * 64})
    with pytest.raises(weights.WeightsError, match="sha256 mismatch"):
        weights.resolve("tiny", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_file_names_itself(tmp_path):
    with pytest.raises(weights.CheckpointError, match="missing.pth"):
        weights.resolve(str(tmp_path / "missing.pth"), tmp_path)


def _workdir_with_state(tmp_path, unet_params, ema_params):
    optimizer = make_optimizer(get_config().train)
    state = create_state(unet_params, optimizer, 0).replace(ema_params=ema_params)
    checkpointer = Checkpointer(tmp_path / "run" / "checkpoints", async_save=False)
    checkpointer.save(7, state, {"batch_index": 7}, force=True)
    checkpointer.wait()
    checkpointer.close()
    return tmp_path / "run"


def test_training_workdir_gives_its_ema_weights(tmp_path, monkeypatch):
    """`--unet_ckpt WORKDIR` restores with the EMA weights of the latest checkpoint (or the
    raw ones with ema=False), from the workdir, its checkpoints folder or a step folder,
    named absolutely or relative to the current folder (as `--unet_ckpt runs/demo`)."""
    config = get_config()
    restorer, fixture = builder.build_restorer(config)
    raw = fixture["unet"]
    ema = jax.tree.map(lambda x: x * 0.5 + 1.0, raw)
    workdir = _workdir_with_state(tmp_path, raw, ema)
    monkeypatch.chdir(tmp_path)
    relative = workdir.relative_to(tmp_path)
    for spec in (workdir, workdir / "checkpoints", workdir / "checkpoints" / "7", relative):
        _, got = builder.build_restorer(config, unet_ckpt=str(spec))
        for a, b in zip(jax.tree.leaves(got["unet"]), jax.tree.leaves(ema)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _, got = builder.build_restorer(config, unet_ckpt=str(workdir), ema=False)
    for a, b in zip(jax.tree.leaves(got["unet"]), jax.tree.leaves(raw)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_workdir_of_another_architecture_or_empty_refused(tmp_path):
    config = get_config()
    _, fixture = builder.build_restorer(config)
    workdir = _workdir_with_state(tmp_path, fixture["unet"], fixture["unet"])
    other = get_config()
    other.model.model_channels = 64
    with pytest.raises(weights.CheckpointError, match="do not fit"):
        builder.build_restorer(other, unet_ckpt=str(workdir))
    (tmp_path / "empty").mkdir()
    with pytest.raises(weights.CheckpointError, match="no training checkpoint"):
        builder.build_restorer(config, unet_ckpt=str(tmp_path / "empty"))
