"""make_testset: the reference's test-set recipes, byte-identical for the same seed."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from resshift_jax.data import make_testset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet_val_x4" / "gt"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "realsr_v3.py"


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory):
    """Three real photographs at odd sizes (one not square, one smaller than gt_size)."""
    root = tmp_path_factory.mktemp("gt")
    files = sorted(DATA.glob("*.png"))[:3]
    assert len(files) == 3, f"need photographs in {DATA}"
    for f, (h, w) in zip(files, [(256, 256), (200, 256), (96, 120)]):
        cv2.imwrite(str(root / f.name), cv2.imread(str(f))[:h, :w])
    (root / "broken.png").write_bytes(b"junk")
    return root


def _digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize("face", [False, True])
def test_same_seed_same_bytes_other_seed_other_lq(gt_dir, tmp_path, face, capsys):
    args = (["--face"] if face else ["--config", str(CONFIG)]) + ["--gt", str(gt_dir), "--num", "3"]
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        rc = make_testset.main(args + ["--out", str(tmp_path / name), "--seed", str(seed)])
        runs[name] = _digest(tmp_path / name)
        assert rc in (0, 1)
    assert runs["a"] == runs["b"] and len(runs["a"]) >= 4
    assert {k: v for k, v in runs["a"].items() if k.startswith("lq/")} != \
        {k: v for k, v in runs["c"].items() if k.startswith("lq/")}
    for lq in (tmp_path / "a" / "lq").glob("*.png"):
        gt = cv2.imread(str(tmp_path / "a" / "gt" / lq.name))
        lq_img = cv2.imread(str(lq))
        if face:
            assert lq_img.shape == gt.shape
        else:
            assert gt.shape == (256, 256, 3) and lq_img.shape == (64, 64, 3)


def test_center_square_matches_smallest_max_size_then_center_crop():
    img = np.arange(200 * 300 * 3, dtype=np.float32).reshape(200, 300, 3) / (200 * 300 * 3)
    out = make_testset.center_square(img, 100)
    ref = cv2.resize(img, (150, 100), interpolation=cv2.INTER_LINEAR)[:, 25:125]
    np.testing.assert_array_equal(out, ref)


def test_unreadable_gt_is_reported_and_skipped(gt_dir, tmp_path):
    problems = make_testset.make_testset(gt_dir, tmp_path / "o", seed=1, face=True)
    assert len(problems) == 1 and "broken.png" in problems[0]
    assert len(list((tmp_path / "o" / "lq").glob("*.png"))) == 3


def test_demo_validation_is_held_out_photos_degraded_like_training_at_a_fixed_seed():
    from configs.demo import TRAIN_PHOTOS, get_config
    from resshift_jax.data.val import load_val_set
    config = get_config()
    assert not set(config.data.val.names) & set(TRAIN_PHOTOS)
    first = load_val_set(config.data.val, config.sf, config.data.train)
    again = load_val_set(config.data.val, config.sf, config.data.train)
    assert len(first) == 2 * 4 and first[0]["gt"].shape == (128, 128, 3)
    assert first[0]["lq"].shape == (32, 32, 3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["lq"], b["lq"])
    assert not np.array_equal(first[0]["lq"], first[1]["lq"])
