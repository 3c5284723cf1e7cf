"""The reference's `lama_distortions` (inpaint_imagenet): each step against albumentations /
imgaug's own output (tests/fixtures/lama_aug.npz), and the chain's draws and batches."""
import pathlib

import cv2
import ml_collections
import numpy as np
import pytest

from resshift_jax.data import lama_aug
from resshift_jax.data.pipeline import make_train_iterator

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "lama_aug.npz"


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(FIXTURE))


def _ops(g):
    x = g["input"]
    return {
        "smallest_max_size": lambda: lama_aug.smallest_max_size(x, 256),
        "pad_if_needed": lambda: lama_aug.pad_if_needed(x, 256),
        "clahe": lambda: lama_aug.clahe(x.copy(), float(g["clahe_clip"])),
        "brightness_contrast": lambda: lama_aug.brightness_contrast(x, *g["brightness_contrast_params"]),
        "hsv": lambda: lama_aug.hue_saturation_value(x, *g["hsv_params"]),
        "perspective": lambda: lama_aug.perspective(x, g["perspective_jitter"]),
        "affine": lambda: lama_aug.affine(x, *g["affine_params"]),
        "optical_distortion": lambda: lama_aug.optical_distortion(x, float(g["optical_distortion_k"])),
    }


WARPS = ("perspective", "affine", "optical_distortion")


@pytest.mark.parametrize("name", ["smallest_max_size", "pad_if_needed", "clahe",
                                  "brightness_contrast", "hsv", *WARPS])
def test_each_step_matches_albumentations(golden, name):
    out = _ops(golden)[name]()
    ref = golden[name]
    assert out.shape == ref.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() == 0, (name, diff.max(), (diff > 0).mean())
    if out.shape == golden["input"].shape:  # the step did something
        assert np.abs(out.astype(int) - golden["input"].astype(int)).mean() > 1


def test_chain_shapes_determinism_and_coverage():
    rng = np.random.default_rng(0)
    img = (rng.uniform(0, 255, (180, 400, 3))).astype(np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 3)
    outs = [lama_aug.lama_distortions(img, np.random.default_rng(i)) for i in range(40)]
    assert all(o.shape == (256, 256, 3) and o.dtype == np.float32 for o in outs)
    assert all(0.0 <= o.min() and o.max() <= 1.0 for o in outs)
    np.testing.assert_array_equal(outs[3], lama_aug.lama_distortions(img, np.random.default_rng(3)))
    means = np.array([o.mean() for o in outs])
    assert len(np.unique(np.round(means, 5))) == len(outs)  # every draw differs
    small = lama_aug.lama_distortions(img[:40, :60], np.random.default_rng(0), size=64)
    assert small.shape == (64, 64, 3)


def test_chain_applies_each_step_about_half_the_time(monkeypatch):
    calls = {name: 0 for name in ("perspective", "affine", "optical_distortion", "clahe",
                                  "brightness_contrast", "hue_saturation_value")}
    for name in calls:
        original = getattr(lama_aug, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(lama_aug, name, counted)
    img = np.full((64, 96, 3), 128, np.uint8)
    n = 400
    for i in range(n):
        lama_aug.lama_distortions(img, np.random.default_rng(i), size=32)
    for name, count in calls.items():
        assert 0.42 < count / n < 0.58, (name, count)


def test_inpaint_imagenet_uses_it_and_unknown_transform_is_refused():
    from configs.inpaint_imagenet import get_config
    from configs.inpaint_face import get_config as face_config
    assert get_config().data.train.transform_type == "lama_distortions"
    assert face_config().data.train.transform_type == "crop"
    config = ml_collections.ConfigDict(dict(
        type="inpainting", sources=({"type": "skimage", "names": ("astronaut", "coffee")},),
        gt_size=64, sf=1, transform_type="lama_distortions", num_workers=1,
        params=dict(mask_kwargs=dict(box_proba=1, box_kwargs=dict(
            margin=2, bbox_min_size=8, bbox_max_size=30, max_times=2, min_times=1)))))
    batch = next(make_train_iterator(config, per_host_batch=4, seed=0))
    assert batch["hq"].shape == (4, 64, 64, 3) and -1.0 <= batch["hq"].min()
    filled = batch["mask"][..., 0] > 0
    assert filled.any() and np.all(batch["lq"][filled] == -1.0)
    config.transform_type = "albumentations"
    with pytest.raises(ValueError, match="transform_type"):
        next(make_train_iterator(config, per_host_batch=4, seed=0))
