"""JPEG, resizes and noises of the Real-ESRGAN degradation against the reference's outputs.

tests/fixtures/degradation_ops.npz is written by tools/make_degradation_ops_fixture.py
(BasicSR's DiffJPEG, torch's F.interpolate and the trainer's noise functions on CPU,
float32). Tolerances, absolute on [0, 1] images: JPEG 1e-5 (observed at most 5e-7; a
quantisation step rounded the other way would cost ~1e-3), resizes 5e-6 (observed 1.2e-6;
source coordinates rounded twice instead of once, as torch's fused multiply-add does,
would cost 1.2e-5 on the white-noise strip), noises with the random draws replaced by the
same deterministic values 1e-6.
"""
import pathlib

import numpy as np
import pytest

from resshift_jax.data import realesrgan
from resshift_jax.data.jpeg import jpeg
from resshift_jax.data.torch_resize import interpolate

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "degradation_ops.npz"


@pytest.fixture(scope="module")
def ref():
    assert FIXTURE.exists(), f"{FIXTURE} missing: run tools/make_degradation_ops_fixture.py"
    return dict(np.load(FIXTURE))


def test_jpeg_matches_diffjpeg(ref):
    sizes = [k[len("jpeg_in_"):] for k in ref if k.startswith("jpeg_in_")]
    assert sorted(sizes) == ["101x67", "24x40", "37x53", "64x64"]
    for size in sizes:
        for img, quality, want in zip(ref[f"jpeg_in_{size}"], ref["jpeg_quality"],
                                      ref[f"jpeg_out_{size}"]):
            got = jpeg(img.astype(np.float32), quality)
            assert got.dtype == np.float32 and got.shape == want.shape
            assert np.abs(got - want).max() <= 1e-5, (size, quality)


def test_jpeg_quality_is_not_rounded(ref):
    img = ref["jpeg_in_64x64"][0].astype(np.float32)
    assert not np.array_equal(jpeg(img, 47.3), jpeg(img, 47.0))


def test_resizes_match_torch_interpolate(ref):
    cases = list(ref["resize_cases"])
    assert len(cases) == 90
    for i, case in enumerate(cases):
        name, mode, kind, *value = case.split()
        img = ref[f"resize_in_{name}"]
        if kind == "scale":
            got = interpolate(img, mode, scale=float(value[0]))
        else:
            got = interpolate(img, mode, size=tuple(int(v) for v in value))
        want = ref[f"resize_out_{i}"]
        assert got.shape == want.shape, case
        assert np.abs(got - want).max() <= 5e-6, case


def test_resize_by_scale_maps_with_one_over_scale():
    """Same output size, different sampling: scale_factor is not the same as size."""
    img = np.random.default_rng(0).random((37, 53, 1)).astype(np.float32)
    by_scale = interpolate(img, "bicubic", scale=1.43)
    by_size = interpolate(img, "bicubic", size=by_scale.shape[:2])
    assert by_scale.shape == (52, 75, 1) and np.abs(by_scale - by_size).max() > 1e-3


class _Replay:
    """A Generator stand-in returning the fixture's 'random' values."""

    def __init__(self, normal=None):
        self.normal = normal

    def poisson(self, lam):
        return np.floor(lam + 0.3)

    def standard_normal(self, shape, dtype):
        assert self.normal.shape == shape and dtype == np.float32
        return self.normal


def test_poisson_noise_matches_reference(ref):
    for img, gray, scale, want in zip(ref["noise_in"], ref["noise_gray"], ref["poisson_scale"],
                                      ref["poisson_out"]):
        got = realesrgan.poisson_noise(img, scale, bool(gray), _Replay())
        assert np.abs(got - want).max() <= 1e-6, (gray, scale)


def test_gaussian_noise_matches_reference(ref):
    gray_z = ref["gauss_randn_gray"][..., None]
    for img, gray, sigma, color_z, want in zip(ref["noise_in"], ref["noise_gray"],
                                               ref["gauss_sigma"], ref["gauss_randn_color"],
                                               ref["gauss_out"]):
        got = realesrgan.gaussian_noise(img, sigma, bool(gray), _Replay(gray_z if gray else color_z))
        assert np.abs(got - want).max() <= 1e-6, (gray, sigma)


def test_poisson_noise_statistics():
    """Unbiased around the 8-bit image, variance q / L * scale^2 (L = 256 levels here)."""
    q = np.tile(np.arange(256, dtype=np.float32) / 255, (64, 1))[..., None].repeat(3, -1)
    out = realesrgan.poisson_noise(q, 0.5, False, np.random.default_rng(0))
    mid = (q > 0.2) & (q < 0.8)  # away from the clipping
    assert abs((out - q)[mid].mean()) < 1e-3
    assert np.isclose(((out - q)[mid] ** 2).mean(), (q[mid] / 256).mean() * 0.25, rtol=0.05)


def test_chain_uses_the_reference_semantics(monkeypatch):
    """First resize by scale_factor, later ones to a size; float JPEG qualities in range;
    the JPEG input clamped to [0, 1]."""
    from configs.common import REALESRGAN
    calls = []

    def spy_resize(img, mode, *, size=None, scale=None):
        calls.append(("resize", mode, size, scale))
        return interpolate(img, mode, size=size, scale=scale)

    def spy_jpeg(img, quality):
        assert img.min() >= 0 and img.max() <= 1
        calls.append(("jpeg", quality))
        return jpeg(img, quality)
    monkeypatch.setattr(realesrgan, "interpolate", spy_resize)
    monkeypatch.setattr(realesrgan, "jpeg", spy_jpeg)
    deg = realesrgan.RealESRGANDegradation(dict(REALESRGAN, blur_kernel_size=7,
                                                blur_kernel_size2=7), 4, 32)
    hq = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    qualities = []
    for seed in range(40):
        calls.clear()
        lq = deg(hq, np.random.default_rng(seed))["lq"]
        assert lq.shape == (8, 8, 3)
        resizes = [c for c in calls if c[0] == "resize"]
        assert resizes[0][2] is None and 0.15 <= resizes[0][3] <= 1.5
        assert all(c[3] is None for c in resizes[1:]) and resizes[-1][2] == (8, 8)
        assert len(resizes) in (2, 3) and len([c for c in calls if c[0] == "jpeg"]) == 2
        qualities += [c[1] for c in calls if c[0] == "jpeg"]
    assert all(30 <= q <= 95 for q in qualities)
    assert any(q != round(q) for q in qualities)


def test_unsupported_options_are_refused():
    from configs.common import REALESRGAN
    for key in ("use_sharp", "resize_back"):
        with pytest.raises(ValueError, match=key):
            realesrgan.RealESRGANDegradation(dict(REALESRGAN, **{key: True}), 4, 64)
