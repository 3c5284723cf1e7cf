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


def test_lpips_needs_its_files():
    config = get_config()
    config.train.loss_coef = {"mse": 1.0, "lpips": 1.0}
    restorer = restorer_from_config(config, jnp.float32)
    with pytest.raises(experiment.SetupError, match="lpips_vgg"):
        experiment.load_frozen(config, restorer)
