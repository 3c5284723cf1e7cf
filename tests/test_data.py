"""Training data: degradation fixture, determinism across hosts, resume, bad files, statistics."""
import json

import cv2
import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs.common import REALESRGAN
from resshift_jax.data import kernels
from resshift_jax.parity.kinds import degradation_arrays as run_degradation_fixture
from resshift_jax.data.pipeline import make_train_iterator
from resshift_jax.data.sources import DataError
from resshift_jax.data.realesrgan import RealESRGANDegradation
from resshift_jax.parity import relative_error


def test_degradation_fixture(parity_dir):
    entry = json.loads((parity_dir / "fixtures.json").read_text())["degradation"]
    io = dict(np.load(parity_dir / entry["io"]))
    out = run_degradation_fixture(entry, io)
    assert set(out) == set(io) - {"photo", "filter2d_in", "filter2d_kernels", "metric_a", "metric_b"}
    for name, value in out.items():
        assert relative_error(value, io[name]) <= 2e-5, name


def _folder(tmp_path, n=6, bad=True):
    rng = np.random.default_rng(0)
    for i in range(n):
        size = (40, 56) if i % 2 else (24, 20)  # some smaller than the crop: padded
        Image.fromarray(rng.integers(0, 256, size + (3,), np.uint8)).save(tmp_path / f"img{i}.png")
    if bad:
        (tmp_path / "empty.png").write_bytes(b"")
        (tmp_path / "text.jpg").write_text("not an image")
        good = (tmp_path / "img0.png").read_bytes()
        (tmp_path / "truncated.png").write_bytes(good[: len(good) // 3])
    return tmp_path


def _config(root, kind="realesrgan", workers=2):
    return ml_collections.ConfigDict(dict(
        type=kind, sources=({"type": "folder", "root": str(root)},), gt_size=32, sf=4,
        crop_pad_size=32, rescale_gt=False, use_hflip=True, use_rot=False,
        params=dict(REALESRGAN, blur_kernel_size=11, blur_kernel_size2=7),
        num_workers=workers, prefetch=2))


def _batches(it, n):
    return [next(it) for _ in range(n)]


def test_same_seed_same_batches_any_worker_count(tmp_path):
    config = _config(_folder(tmp_path, bad=False))
    a = _batches(make_train_iterator(config, per_host_batch=4, seed=3), 3)
    b = _batches(make_train_iterator(_config(tmp_path, workers=1), per_host_batch=4, seed=3), 3)
    for x, y in zip(a, b):
        assert x["hq"].shape == (4, 32, 32, 3) and x["lq"].shape == (4, 8, 8, 3)
        assert x["hq"].min() >= -1 and x["hq"].max() <= 1
        np.testing.assert_array_equal(x["lq"], y["lq"])
    c = next(make_train_iterator(config, per_host_batch=4, seed=4))
    assert not np.array_equal(a[0]["hq"], c["hq"])


def test_two_hosts_split_the_global_batch_contiguously(tmp_path):
    config = _config(_folder(tmp_path, bad=False))
    one = _batches(make_train_iterator(config, per_host_batch=4, seed=0), 2)
    hosts = [_batches(make_train_iterator(config, per_host_batch=2, seed=0, process_index=p,
                                          process_count=2), 2) for p in range(2)]
    for k in range(2):  # host p holds the contiguous rows 2p, 2p+1 of the global batch
        merged = np.concatenate([hosts[0][k]["lq"], hosts[1][k]["lq"]])
        np.testing.assert_array_equal(merged, one[k]["lq"])


def test_resume_continues_with_the_next_batch(tmp_path):
    config = _config(_folder(tmp_path, bad=False))
    straight = _batches(make_train_iterator(config, per_host_batch=4, seed=0), 5)
    first = make_train_iterator(config, per_host_batch=4, seed=0)
    _batches(first, 3)
    state = json.loads(json.dumps(first.get_state()))
    resumed = make_train_iterator(config, per_host_batch=4, seed=0)
    resumed.set_state(state)
    np.testing.assert_array_equal(next(resumed)["hq"], straight[3]["hq"])


def test_bad_files_skipped_and_counted(tmp_path):
    it = make_train_iterator(_config(_folder(tmp_path)), per_host_batch=8, seed=0)
    batches = _batches(it, 3)
    assert all(np.isfinite(b["lq"]).all() for b in batches)
    assert it.skipped > 0 and it.get_state()["skipped"] == [it.skipped]


def _hosts(config, count, batches, state=None):
    """The data state of `count` hosts (batch 8 in all) after `batches` more batches from
    `state`, their "skipped" lists summed as train.loop sums them."""
    hosts = [make_train_iterator(config, per_host_batch=8 // count, seed=0, process_index=p,
                                 process_count=count, degradation=lambda hq, rng: {"hq": hq})
             for p in range(count)]
    for it in hosts:
        if state is not None:
            it.set_state(json.loads(json.dumps(state)))  # as a checkpoint holds it
        _batches(it, batches)
    states = [it.get_state() for it in hosts]
    return {**states[0], "skipped": np.sum([s["skipped"] for s in states], 0).tolist()}


def test_skip_counts_by_process_sum_to_one_hosts_and_survive_any_resume(tmp_path):
    config = _config(_folder(tmp_path))
    total = sum(_hosts(config, 1, 4)["skipped"])
    one, two = _hosts(config, 1, 2), _hosts(config, 2, 2)
    assert len(two["skipped"]) == 2 and two["skipped"][1] > 0  # not only host 0's
    assert sum(two["skipped"]) == sum(one["skipped"]) > 0
    assert _hosts(config, 2, 2, two) == _hosts(config, 2, 4)  # each host continues its own
    older = {**one, "skipped": sum(one["skipped"])}  # a checkpoint from before the lists
    for state in (one, two, older):
        for count in (1, 2):
            resumed = _hosts(config, count, 2, state)
            assert len(resumed["skipped"]) == count and sum(resumed["skipped"]) == total


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        make_train_iterator(_config(tmp_path), per_host_batch=4, seed=0)


def test_bicubic_type_and_skimage_source():
    config = ml_collections.ConfigDict(dict(
        type="bicubic", sources=({"type": "skimage", "names": ("astronaut", "coffee")},),
        gt_size=64, sf=4, crop_pad_size=64, use_hflip=False, params={}, num_workers=1))
    batch = next(make_train_iterator(config, per_host_batch=2, seed=0))
    assert batch["lq"].shape == (2, 16, 16, 3)


def test_degradation_draws_follow_the_configured_probabilities(monkeypatch):
    """Over many images: kernel types, the second blur and the final sinc at their rates."""
    from resshift_jax.data import realesrgan
    counts = {"filter": 0, "iso": 0, "aniso": 0, "generalized": 0, "plateau": 0, "sinc": 0}
    real_filter = kernels.filter2d

    def count_filter(img, k):
        counts["filter"] += 1
        return real_filter(img, k)

    def counted(name, fn):
        def wrapped(*args, **kwargs):
            iso = args[-1] if isinstance(args[-1], bool) else kwargs.get("isotropic", True)
            counts[name if name != "gauss" else ("iso" if iso else "aniso")] += 1
            return fn(*args, **kwargs)
        return wrapped
    monkeypatch.setattr(kernels, "filter2d", count_filter)
    monkeypatch.setattr(kernels, "bivariate_gaussian", counted("gauss", kernels.bivariate_gaussian))
    monkeypatch.setattr(kernels, "bivariate_generalized_gaussian",
                        counted("generalized", kernels.bivariate_generalized_gaussian))
    monkeypatch.setattr(kernels, "bivariate_plateau", counted("plateau", kernels.bivariate_plateau))
    monkeypatch.setattr(kernels, "circular_lowpass", counted("sinc", kernels.circular_lowpass))
    params = dict(REALESRGAN, blur_kernel_size=7, blur_kernel_size2=7)
    deg = realesrgan.RealESRGANDegradation(params, 4, 16)
    hq = np.full((16, 16, 3), 0.5, np.float32)
    n = 1500
    for i in range(n):
        deg(hq, np.random.default_rng(i))

    def near(observed, expected):
        return abs(observed - expected) < 5 * np.sqrt(expected * (1 - min(expected, 0.99)) / n) + 0.01
    # filter2d: blur 1 always, second blur 0.5 * 0.8, final sinc 0.8
    extra = counts["filter"] / n - 1  # Bernoulli(0.4) + Bernoulli(0.8) per image
    assert abs(extra - 1.2) < 5 * np.sqrt((0.4 * 0.6 + 0.8 * 0.2) / n)
    # two mixed kernels per image (stages 1 and 2), each non-sinc with probability 0.9
    mixed = 2 * n * 0.9
    assert near(counts["iso"] / mixed, 0.45) and near(counts["aniso"] / mixed, 0.25)
    assert near(counts["generalized"] / mixed, 0.15) and near(counts["plateau"] / mixed, 0.15)
    assert abs(counts["sinc"] / n - 1.0) < 5 * np.sqrt((2 * 0.09 + 0.16) / n)


def test_realesrgan_shapes_and_determinism():
    deg = RealESRGANDegradation(dict(REALESRGAN), 4, 64)
    hq = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    a = deg(hq, np.random.default_rng(7))["lq"]
    b = deg(hq, np.random.default_rng(7))["lq"]
    assert a.shape == (16, 16, 3) and np.array_equal(a, b)
    assert np.all((a >= 0) & (a <= 1)) and np.allclose(a * 255, np.round(a * 255), atol=1e-4)


def test_a_larger_crop_is_degraded_whole_then_cropped_to_gt_size_pairs():
    """rescale_gt off, crop_pad_size 96 > gt_size 64 (the reference's Real-ESRGAN path): the
    HQ is a 64-pixel block of the photograph itself, not the 96 crop resized."""
    from skimage import data as photos
    config = ml_collections.ConfigDict(dict(
        type="realesrgan", sources=({"type": "skimage", "names": ("astronaut",)},),
        gt_size=64, crop_pad_size=96, rescale_gt=False, use_hflip=False, params=dict(REALESRGAN),
        num_workers=1))
    batch = next(make_train_iterator(config, per_host_batch=2, seed=0, sf=4))
    assert batch["hq"].shape == (2, 64, 64, 3) and batch["lq"].shape == (2, 16, 16, 3)
    photo = photos.astronaut().astype(np.float32) / 255.0
    for hq in batch["hq"] * 0.5 + 0.5:
        match = cv2.matchTemplate(photo, hq, cv2.TM_SQDIFF)
        assert match.min() < 1e-3, match.min()  # float rounding; a resized crop: > 1


@pytest.mark.parametrize("change", [dict(crop_pad_size=48), dict(type="bicubic")])
def test_a_crop_other_than_gt_size_without_rescale_is_realesrgan_only(change):
    config = ml_collections.ConfigDict(dict(
        type="realesrgan", sources=({"type": "skimage", "names": ("astronaut",)},),
        gt_size=64, crop_pad_size=96, rescale_gt=False, params=dict(REALESRGAN), num_workers=1))
    config.update(change)
    with pytest.raises(DataError, match="crop_pad_size=.* with rescale_gt off"):
        make_train_iterator(config, per_host_batch=2, seed=0, sf=4)


def test_preview_writes_a_grid_and_never_overwrites(tmp_path):
    import subprocess
    import sys
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    out = tmp_path / "grid.png"
    cmd = [sys.executable, "-m", "resshift_jax.data.preview", "--config",
           str(root / "configs" / "demo.py"), "--out", str(out), "--n", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(out) as im:
        assert im.size == (128, 3 * 64)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr


def test_inpainting_masks_and_batches():
    from configs.inpaint_imagenet import MASKS
    from resshift_jax.data.masks import mixed_mask
    rng = np.random.default_rng(0)
    masks = [mixed_mask(rng, 256, 256, MASKS) for _ in range(60)]
    coverage = np.array([m.mean() for m in masks])
    assert all(set(np.unique(m)) <= {0.0, 1.0} and m.shape == (256, 256, 1) for m in masks)
    assert 0.02 < coverage.mean() < 0.6 and coverage.max() < 1.0
    again = mixed_mask(np.random.default_rng(0), 256, 256, MASKS)
    np.testing.assert_array_equal(again, masks[0])
    config = ml_collections.ConfigDict(dict(
        type="inpainting", sources=({"type": "skimage", "names": ("astronaut",)},), gt_size=64,
        sf=1, crop_pad_size=64, use_hflip=True, params=dict(mask_kwargs=dict(
            MASKS, box_kwargs=dict(MASKS["box_kwargs"], bbox_min_size=8, bbox_max_size=30, margin=2))),
        num_workers=1))
    batch = next(make_train_iterator(config, per_host_batch=4, seed=0))
    assert batch["mask"].shape == (4, 64, 64, 1) and set(np.unique(batch["mask"])) <= {-1.0, 1.0}
    filled = batch["mask"][..., 0] > 0
    assert np.all(batch["lq"][filled] == -1.0)
    np.testing.assert_array_equal(batch["lq"][~filled], batch["hq"][~filled])


def test_face_degradation():
    from configs.faceir import get_config
    from resshift_jax.data.face import FaceDegradation
    params = dict(get_config().data.train.params)
    deg = FaceDegradation(dict(params, blur_kernel_size=11, gray_prob=1.0), 1, 64)
    hq = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    out = deg(hq, np.random.default_rng(3))
    hq_out, lq = out["hq"], out["lq"]
    assert lq.shape == hq.shape and np.allclose(lq[..., 0], lq[..., 1])  # gray_prob 1
    assert np.allclose(hq_out[..., 0], hq_out[..., 2])  # gt_gray
    a = FaceDegradation(params, 1, 64)(hq, np.random.default_rng(5))["lq"]
    b = FaceDegradation(params, 1, 64)(hq, np.random.default_rng(5))["lq"]
    np.testing.assert_array_equal(a, b)


def test_face_degradation_uses_opencv_jpeg_at_a_truncated_quality(monkeypatch):
    """BasicSR's add_jpg_compression (OpenCV, int(quality)), not the Real-ESRGAN DiffJPEG."""
    from configs.faceir import get_config
    from resshift_jax.data import face
    qualities = []
    real = face.opencv_jpeg

    def spy(img, quality):
        qualities.append(quality)
        return real(img, quality)
    monkeypatch.setattr(face, "opencv_jpeg", spy)
    params = dict(get_config().data.train.params, blur_kernel_size=11, jpeg_range=(47.0, 47.99))
    face.FaceDegradation(params, 1, 32)(np.full((32, 32, 3), 0.5, np.float32), np.random.default_rng(0))
    assert qualities == [47]
    img = np.random.default_rng(1).random((24, 24, 3)).astype(np.float32)
    ok, buf = cv2.imencode(".jpg", np.round(img[..., ::-1] * 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, 47])
    np.testing.assert_array_equal(real(img, 47), cv2.imdecode(buf, 1)[..., ::-1] / np.float32(255))


@pytest.mark.parametrize("change, says", [
    (dict(type="bogus"), "data.train.type: unknown 'bogus'"),
    (dict(transform_type="bogus"), "data.train.transform_type: unknown 'bogus'"),
    (dict(sources=({"type": "folder", "root": "/nonexistent/photos"},)), "image folder does not exist"),
    (dict(sources=({"type": "zip", "path": "x.zip"},)), "unknown data source type 'zip'"),
])
def test_unusable_data_config_is_refused_when_the_iterator_is_made(tmp_path, change, says):
    config = _config(_folder(tmp_path, n=2, bad=False))
    config.update(change)
    with pytest.raises(DataError, match=says):
        make_train_iterator(config, per_host_batch=2, seed=0)


def test_only_unreadable_images_is_a_data_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="unreadable images in a row"):
        next(make_train_iterator(_config(tmp_path), per_host_batch=2, seed=0))
