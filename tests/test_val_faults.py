"""Validation under faults: a bad file of the validation folder is named, skipped and counted
(when the set is read, before training), an image whose restoration fails is skipped at each
validation, and a missing or empty folder stops train.py at once with one line."""
import logging
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np
from PIL import Image
import pytest

from configs.tiny_test import get_config
from resshift_jax.data.val import ValSetError, load_val_set
from resshift_jax.train import experiment
from tests import one_device

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _save(path, h, w, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(np.random.default_rng(h * w).integers(0, 256, shape, np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """lq/{a,b,c,d,e}.png: a is good; b's GT has the wrong size, c's GT is corrupt, d is
    corrupt, e's mask has the wrong size."""
    for name in "abce":
        _save(tmp_path / "lq" / f"{name}.png", 8, 6)
    for name in "ae":
        _save(tmp_path / "gt" / f"{name}.png", 32, 24)
    _save(tmp_path / "gt" / "b.png", 30, 24)
    (tmp_path / "gt" / "c.png").write_bytes(b"junk")
    (tmp_path / "lq" / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _save(tmp_path / "mask" / "a.png", 8, 6, "L")
    _save(tmp_path / "mask" / "e.png", 6, 8, "L")
    return tmp_path


def _val(root, **kw):
    return ml_collections.ConfigDict({**dict(type="folder", lq_dir=str(root / "lq"),
                                             gt_dir=str(root / "gt"), mask_dir=str(root / "mask"),
                                             max_images=0), **kw})


def test_each_bad_file_is_named_skipped_and_counted(folder, caplog):
    with caplog.at_level(logging.WARNING):
        val_set = load_val_set(_val(folder), 4)
    assert [v["name"] for v in val_set] == ["a.png"]
    lines = [r.getMessage() for r in caplog.records]
    for bad, words in (("gt/b.png", "GT is 24x30, not the 24x32"), ("gt/c.png", "not a recognised"),
                       ("lq/d.png", ""), ("mask/e.png", "mask is 8x6, not the 6x8")):
        assert sum(line.startswith(f"validation set: skipped {folder / bad}: ") and words in line
                   for line in lines) == 1, (bad, lines)
    assert f"validation set: 4 of the 5 images of {folder / 'lq'} skipped, 1 used" in lines


def test_missing_folders_and_an_empty_set_are_val_set_errors(folder, tmp_path):
    with pytest.raises(ValSetError, match="nosuch: the validation folder data.val.gt_dir does not exist"):
        load_val_set(_val(folder, gt_dir=str(tmp_path / "nosuch")), 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValSetError, match=r"empty: no usable validation images \(0 image files"):
        load_val_set(ml_collections.ConfigDict(dict(lq_dir=str(tmp_path / "empty"))), 4)


class _Restorer:
    """x4 nearest-neighbour 'restoration' that runs out of memory on 'bad.png'."""
    params = None

    def restore_batch(self, images, masks=None, names=None):
        if names == ["bad.png"]:
            raise MemoryError("RESOURCE_EXHAUSTED: out of memory\nallocation details")
        return [np.repeat(np.repeat(images[0], 4, 0), 4, 1)]


def test_a_failed_restoration_is_skipped_and_counted(monkeypatch, caplog):
    monkeypatch.setattr(experiment.builder, "image_restorer", lambda *a, **k: _Restorer())
    config = get_config()
    config.autoencoder = None
    lq = np.random.default_rng(0).random((8, 6, 3), np.float32)
    val_set = [{"name": n, "lq": lq, "gt": np.repeat(np.repeat(lq, 4, 0), 4, 1)}
               for n in ("good.png", "bad.png")]
    with caplog.at_level(logging.WARNING):
        scores = experiment.make_eval_fn(config, {}, val_set)(None, 0)
    assert scores["val/skipped"] == 1 and scores["val/psnr_y"] == float("inf")
    assert [r.getMessage() for r in caplog.records] == [
        "validation: skipped bad.png: MemoryError: RESOURCE_EXHAUSTED: out of memory"]


def test_train_py_stops_at_once_on_a_missing_validation_folder(tmp_path):
    missing = tmp_path / "nosuch"
    (tmp_path / "cfg.py").write_text(
        "import ml_collections\nfrom configs.tiny_test import get_config as tiny\n\n\n"
        "def get_config():\n    c = tiny()\n"
        f"    c.data.val = ml_collections.ConfigDict(dict(lq_dir={str(missing)!r}))\n"
        "    return c\n")
    proc = subprocess.run([sys.executable, "train.py", "--config", str(tmp_path / "cfg.py"),
                           "--workdir", str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=one_device.ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines()[-1] == f"error: {missing}: the validation folder data.val.lq_dir does not exist"
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
