"""Training validation restores exactly what sample.py writes: same padding, tiling, masks,
paste-back and per-file noise, on the fixtures' tiny inpainting model."""
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np
from PIL import Image

from configs.tiny_inpaint_test import get_config
from resshift_jax import builder
from resshift_jax.data.val import load_val_set
from resshift_jax.train import experiment
from tests import one_device

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _val_folder(root: pathlib.Path):
    rng = np.random.default_rng(0)
    for sub in ("lq", "gt", "mask"):
        (root / sub).mkdir(parents=True)
    for name, (h, w) in {"small.png": (40, 48), "tiled.png": (130, 40)}.items():  # 1 and 2 tiles
        image = rng.integers(0, 256, (h, w, 3), np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4: h // 2, w // 3: 2 * w // 3] = 255
        Image.fromarray(image).save(root / "lq" / name)
        Image.fromarray(image).save(root / "gt" / name)
        Image.fromarray(mask).save(root / "mask" / name)


def test_validation_image_equals_sample_py_output(tmp_path, monkeypatch):
    _val_folder(tmp_path / "val")
    config = get_config()
    config.data.val = ml_collections.ConfigDict(dict(
        type="folder", lq_dir=str(tmp_path / "val/lq"), gt_dir=str(tmp_path / "val/gt"),
        mask_dir=str(tmp_path / "val/mask"), max_images=8))
    val_set = load_val_set(config.data.val, config.sf)
    assert [v["name"] for v in val_set] == ["small.png", "tiled.png"]

    _, params = builder.build_restorer(config)
    restored = []

    def spy(image_restorer, examples):
        restored.extend(restore(image_restorer, examples))
        return restored
    restore = experiment.restore_val_set
    monkeypatch.setattr(experiment, "restore_val_set", spy)
    scores = experiment.make_eval_fn(config, {"vq": params["vq"]}, val_set)(params["unet"], 0)
    assert np.isfinite(scores["val/psnr_y"]) and "val/psnr_y_bicubic" in scores

    proc = subprocess.run(
        [sys.executable, str(ROOT / "sample.py"), "--config", str(ROOT / "configs/tiny_inpaint_test.py"),
         "-i", str(tmp_path / "val/lq"), "--mask_path", str(tmp_path / "val/mask"),
         "-o", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, timeout=600,
        env=one_device.ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for example, ours in zip(val_set, restored):
        written = np.asarray(Image.open(tmp_path / "out" / example["name"]).convert("RGB"))
        np.testing.assert_array_equal(experiment._to_uint8(ours), written)
        known = example["mask"][..., 0] == 0  # pasted back: the known pixels are the input's
        np.testing.assert_array_equal(written[known], experiment._to_uint8(example["lq"])[known])
        assert not np.array_equal(written[~known], experiment._to_uint8(example["lq"])[~known])
