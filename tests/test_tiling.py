"""Tiled inference: reference parity, seamless blending, fixed batch shapes, padding."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resshift_jax.parity import relative_error
from resshift_jax.parity.kinds import ADAPTERS, Context
from resshift_jax.tiling import (
    chop_and_run,
    crop_to,
    pad_to_multiple,
    patch_starts,
)


def _upsample(p, sf):
    """Nearest upsampling of HWC or NHWC."""
    return np.repeat(np.repeat(np.asarray(p), sf, axis=-3), sf, axis=-2)


def test_tiling_fixture_matches_reference(parity_dir):
    entries = json.loads((parity_dir / "fixtures.json").read_text())
    entry = entries["tiling"]
    io = dict(np.load(parity_dir / entry["io"]))  # a missing file fails here, never skips
    got = ADAPTERS["tiling"]("tiling", entry, Context(parity_dir, entries, "float32"))
    np.testing.assert_array_equal(got["starts_h"], io["starts_h"])
    np.testing.assert_array_equal(got["starts_w"], io["starts_w"])
    assert relative_error(got["out"], io["out"]) < 2e-5


@pytest.mark.parametrize(
    "length, chop, stride, expected",
    [(100, 32, 24, [0, 24, 48, 68]), (75, 32, 24, [0, 24, 43]), (64, 32, 32, [0, 32]),
     (30, 32, 24, [0]), (32, 32, 8, [0]), (33, 32, 32, [0, 1])],
)
def test_patch_starts(length, chop, stride, expected):
    assert patch_starts(length, chop, stride) == expected


def test_bad_arguments_rejected():
    with pytest.raises(ValueError):
        patch_starts(100, 32, 40)
    with pytest.raises(ValueError, match="blend"):
        chop_and_run(np.zeros((40, 40, 3)), lambda p, ids: p, chop_size=16, chop_stride=8, sf=1,
                     blend="nope")


def _tile_offset_net(sf):
    """Upsample plus a different constant per call: exposes any seam between tiles."""
    calls = []

    def fn(p, ids):
        calls.append(p.shape)
        return _upsample(p, sf) + 0.1 * len(calls)
    return fn


def _steps(out, borders_h, borders_w):
    """Max neighbouring-pixel difference at tile borders and elsewhere (H and W together)."""
    dh = np.abs(np.diff(out, axis=0)).max(axis=(1, 2))  # dh[j]: rows j -> j+1
    dw = np.abs(np.diff(out, axis=1)).max(axis=(0, 2))
    at_h = np.zeros_like(dh, bool)
    at_h[[b - 1 for b in borders_h if 0 < b < out.shape[0]]] = True
    at_w = np.zeros_like(dw, bool)
    at_w[[b - 1 for b in borders_w if 0 < b < out.shape[1]]] = True
    border = max(dh[at_h].max(), dw[at_w].max())
    interior = max(dh[~at_h].max(), dw[~at_w].max())
    return border, interior


def test_gaussian_blend_has_no_seams():
    sf, chop, stride = 2, 32, 24
    yy, xx = np.meshgrid(np.linspace(0, 0.05, 90), np.linspace(0, 0.05, 70), indexing="ij")
    img = np.stack([yy, xx, yy + xx], axis=-1).astype(np.float32)
    hs, ws = patch_starts(90, chop, stride), patch_starts(70, chop, stride)
    borders_h = sorted({s * sf for s in hs} | {(s + chop) * sf for s in hs})
    borders_w = sorted({s * sf for s in ws} | {(s + chop) * sf for s in ws})
    res = {}
    for blend in ("average", "gaussian"):
        out = chop_and_run(img, _tile_offset_net(sf), chop_size=chop, chop_stride=stride,
                           sf=sf, blend=blend)
        res[blend] = _steps(out, borders_h, borders_w)
    avg_border, avg_interior = res["average"]
    g_border, g_interior = res["gaussian"]
    assert avg_border > 5 * avg_interior  # the seam is there without blending
    assert g_border <= g_interior  # no step at the tile borders
    assert g_border < 0.1 * avg_border
    assert g_interior < 0.5 * avg_border  # the cross-fade spreads the offset over the overlap


def test_gaussian_blend_reproduces_a_tile_independent_net():
    """Weights are normalised: a net that ignores tiling gives the same image whatever the blend."""
    rng = np.random.default_rng(0)
    img = rng.standard_normal((2, 50, 41, 3)).astype(np.float32)
    for blend in ("average", "gaussian"):
        out = chop_and_run(img, lambda p, ids: _upsample(p, 3), chop_size=16, chop_stride=12, sf=3,
                           batch_size=4, blend=blend)
        np.testing.assert_allclose(out, _upsample(img, 3), rtol=1e-5, atol=1e-5)


def test_fixed_batch_shape_and_single_compile():
    traces = []

    @jax.jit
    def fn(p, ids):
        traces.append(p.shape)  # runs at trace time only
        return jnp.repeat(jnp.repeat(p, 2, axis=1), 2, axis=2) * 2.0

    rng = np.random.default_rng(1)
    img = rng.standard_normal((45, 37, 3)).astype(np.float32)  # 3 x 3 = 9 tiles
    seen = []
    out = chop_and_run(img, fn, chop_size=20, chop_stride=16, sf=2, batch_size=4,
                       progress=lambda done, total: seen.append((done, total)))
    assert traces == [(4, 20, 20, 3)]
    assert seen == [(4, 9), (8, 9), (9, 9)]
    np.testing.assert_allclose(out, _upsample(img, 2) * 2.0, rtol=1e-6, atol=1e-6)


def test_padded_batch_outputs_are_dropped():
    """Batching (with a padded last batch) does not change the result."""
    rng = np.random.default_rng(2)
    img = rng.standard_normal((1, 60, 50, 3)).astype(np.float32)

    def fn(p, ids):  # depends on the whole tile, so misplaced tiles would show
        return _upsample(p, 2) + p.mean(axis=(1, 2, 3), keepdims=True)
    kw = dict(chop_size=24, chop_stride=20, sf=2)
    ref = chop_and_run(img, fn, batch_size=1, **kw)
    for bs in (3, 5, 64):
        np.testing.assert_allclose(chop_and_run(img, fn, batch_size=bs, **kw), ref, atol=1e-6)


def test_image_smaller_than_chop_is_one_tile():
    img = np.random.default_rng(3).standard_normal((20, 70, 3)).astype(np.float32)
    shapes = []

    def fn(p, ids):
        shapes.append(p.shape)
        return _upsample(p, 2)
    out = chop_and_run(img, fn, chop_size=32, chop_stride=24, sf=2, batch_size=2)
    assert set(shapes) == {(2, 20, 32, 3)}  # H is one tile of its own size
    np.testing.assert_allclose(out, _upsample(img, 2), atol=1e-6)


def test_pad_to_multiple_and_crop():
    img = np.arange(5 * 7 * 2, dtype=np.float32).reshape(5, 7, 2)
    padded, size = pad_to_multiple(img, 4)
    assert padded.shape == (8, 8, 2) and size == (5, 7)
    np.testing.assert_array_equal(padded[:5, :7], img)
    np.testing.assert_array_equal(padded[5, :7], img[3])  # reflect excludes the edge (torch's)
    np.testing.assert_array_equal(padded[:5, 7], img[:, 5])
    batch, size = pad_to_multiple(img[None], 4)
    assert batch.shape == (1, 8, 8, 2)
    up = _upsample(batch, 3)
    np.testing.assert_array_equal(crop_to(up, size, sf=3), _upsample(img[None], 3))
    same, size = pad_to_multiple(img[:4, :4], 4)
    assert same.shape == (4, 4, 2) and size == (4, 4)
    big, _ = pad_to_multiple(img, 16)  # pad larger than the image still works
    assert big.shape == (16, 16, 2)
