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


def test_unreadable_gt_is_reported_and_skipped(gt_dir, tmp_path, capsys):
    rc = make_testset.main(["--face", "--gt", str(gt_dir), "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 1 and err == f"failed: {gt_dir / 'broken.png'}: not a recognised image format\n"
    assert out == f"3 pairs written to {tmp_path / 'o'}, 1 failed, 0 kept (already there; " \
        "--overwrite replaces them)\n"
    assert len(list((tmp_path / "o" / "lq").glob("*.png"))) == 3


def _small_photos(root, names=("a.png", "b.png", "c.png")):
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    for name in names:
        cv2.imwrite(str(root / name), rng.integers(0, 256, (64, 48, 3), np.uint8))
    return root


def test_rerun_keeps_results_and_writes_the_missing_ones_byte_identical(tmp_path):
    photos, out = _small_photos(tmp_path / "photos"), tmp_path / "out"
    first = make_testset.make_testset(photos, out, seed=2, face=True)
    assert (first.written, first.kept, first.failures) == (3, 0, [])
    digest = _digest(out)
    (out / "lq" / "a.png").write_bytes(b"the user's own edit")
    (out / "gt" / "b.png").unlink()
    again = make_testset.make_testset(photos, out, seed=2, face=True)
    assert (again.written, again.kept, again.failures) == (1, 2, [])
    assert (out / "lq" / "a.png").read_bytes() == b"the user's own edit"
    assert _digest(out) == {**digest, "lq/a.png": _digest(out)["lq/a.png"]}
    assert make_testset.make_testset(photos, out, seed=2, face=True, overwrite=True).written == 3
    assert _digest(out) == digest


def test_inputs_are_never_replaced_nor_results_taken_as_inputs(tmp_path):
    photos = _small_photos(tmp_path / "set" / "gt")
    before = _digest(photos)
    with pytest.raises(make_testset.TestsetError, match="inside --out's gt/ folder"):
        make_testset.make_testset(photos, tmp_path / "set", seed=2, face=True)
    assert _digest(photos) == before
    inside = photos / "made"  # results under the GT folder: a rerun does not read them
    make_testset.make_testset(photos, inside, seed=2, face=True)
    again = make_testset.make_testset(photos, inside, seed=2, face=True)
    assert (again.written, again.kept, again.failures) == (0, 3, [])


def test_two_inputs_with_one_result_name_are_a_failure_not_an_overwrite(tmp_path):
    photos = _small_photos(tmp_path / "photos", ("a.png", "a.jpg", "b.png"))
    summary = make_testset.make_testset(photos, tmp_path / "out", seed=2, face=True)
    assert summary.written == 2 and len(summary.failures) == 1
    [line] = summary.failures
    assert "its results would be a.png, as" in line and "a.jpg" in line and "a.png" in line


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


def test_face_image_smaller_than_its_scale_factor_is_one_clear_line(tmp_path, capsys):
    photos = _small_photos(tmp_path / "photos", names=("a.png",))
    cv2.imwrite(str(photos / "tiny.png"), np.zeros((1, 2, 3), np.uint8))
    rc = make_testset.main(["--face", "--gt", str(photos), "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 1 and err.startswith(f"failed: {photos / 'tiny.png'}: ValueError: 2x1 px is "
                                      "too small for the face degradation") and err.count("\n") == 1
    assert out.startswith("1 pairs written") and (tmp_path / "o" / "lq" / "a.png").exists()


def test_unusable_arguments_are_one_line_and_status_2_before_any_image(tmp_path, capsys):
    photos = _small_photos(tmp_path / "photos")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("")
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    (tmp_path / "no_data.py").write_text("import ml_collections\ndef get_config():\n"
                                         "    return ml_collections.ConfigDict({'sf': 4})\n")
    inside = _small_photos(tmp_path / "set" / "gt" / "sub")
    face = ["--face", "--gt", str(photos), "--out"]
    cases = {
        "a_file: the --out folder is a file": face + [str(tmp_path / "a_file")],
        "--num -1: give 0": face + [str(tmp_path / "o"), "--num", "-1"],
        "--seed -5: give 0": face + [str(tmp_path / "o"), "--seed", "-5"],
        "nowhere: --gt does not exist": ["--face", "--gt", str(tmp_path / "nowhere"),
                                         "--out", str(tmp_path / "o")],
        "--out may not be the --gt folder": face + [str(photos)],
        "inside --out's gt/ folder": ["--face", "--gt", str(inside), "--out",
                                      str(tmp_path / "set")],
        "empty: no images in --gt": ["--face", "--gt", str(tmp_path / "empty"),
                                     "--out", str(tmp_path / "o")],
        "--config is needed": ["--gt", str(photos), "--out", str(tmp_path / "o")],
        "missing.py": ["--config", str(tmp_path / "missing.py"), "--gt", str(photos),
                       "--out", str(tmp_path / "o")],
        "broken.py": ["--config", str(tmp_path / "broken.py"), "--gt", str(photos),
                      "--out", str(tmp_path / "o")],
        "no usable data.train": ["--config", str(tmp_path / "no_data.py"), "--gt", str(photos),
                                 "--out", str(tmp_path / "o")],
    }
    for message, argv in cases.items():
        rc = make_testset.main(argv)
        out, err = capsys.readouterr()
        assert rc == 2 and out == "" and err.count("\n") == 1, (message, err)
        assert err.startswith("error: ") and message in err, (message, err)
    assert not (tmp_path / "o").exists()
