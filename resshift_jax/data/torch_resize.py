"""torch's F.interpolate (area / bilinear / bicubic, align_corners=False, no antialias) in numpy.

The reference's Real-ESRGAN degradation resizes with it, and it differs from OpenCV's
resize: `area` is adaptive average pooling (bins floor(i*in/out) .. ceil((i+1)*in/out)),
even when enlarging; bilinear and bicubic never widen their kernel when shrinking; given a
`scale` rather than a size, the output is floor(in * scale) and source coordinates are
mapped with 1/scale, not in/out. Each axis is resized by gathering a few taps per output
pixel, weighted as torch weighs them, in float32 (cubic A = -0.75, border taps clamped),
without BLAS (whose threads thrash when the data workers share the cores).
"""
import math

import numpy as np

MODES = ("area", "bilinear", "bicubic")


def _area(n_in: int, n_out: int):
    i = np.arange(n_out)
    start, end = i * n_in // n_out, -(-(i + 1) * n_in // n_out)
    taps = np.arange(int((end - start).max()))
    index = start[:, None] + taps
    inside = index < end[:, None]
    count = (end - start).astype(np.float32)[:, None]
    return np.minimum(index, n_in - 1), np.where(inside, np.float32(1) / count, np.float32(0))


def _source(n_in: int, n_out: int, scale, cubic: bool):
    """Float32 source coordinates of the output pixels, floor index and fraction."""
    ratio = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
    # ratio * (i + 0.5) - 0.5 is one fused multiply-add in torch's kernels (a single
    # rounding to float32); in float64 it is exact, so rounding it once matches
    src = (np.float64(ratio) * (np.arange(n_out) + 0.5) - 0.5).astype(np.float32)
    if not cubic:
        src = np.maximum(src, np.float32(0))
    index = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    return index, np.clip(src - index.astype(np.float32), 0, 1).astype(np.float32)


def _linear(n_in: int, n_out: int, scale):
    if n_in == n_out:  # torch copies, whatever the scale
        return np.arange(n_out)[:, None], np.ones((n_out, 1), np.float32)
    index, frac = _source(n_in, n_out, scale, cubic=False)
    index = np.stack([index, np.minimum(index + 1, n_in - 1)], axis=-1)
    return index, np.stack([np.float32(1) - frac, frac], axis=-1)


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution (A = -0.75) at distances t+1, t, 1-t, 2-t, in float32."""
    a = np.float32(-0.75)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    one = np.float32(1)
    return np.stack([far(t + one), near(t), near(one - t), far(one - t + one)], axis=-1)


def _cubic(n_in: int, n_out: int, scale):
    index, frac = _source(n_in, n_out, scale, cubic=True)
    taps = np.clip(index[:, None] + np.arange(-1, 3), 0, n_in - 1)
    return taps, _cubic_weights(frac)


def taps(mode: str, n_in: int, n_out: int, scale=None):
    """(index, weight), both (n_out, taps): output i of one axis is sum_k weight[i, k] *
    input[index[i, k]]. `scale` is the scale_factor if one was given."""
    if mode == "area":
        return _area(n_in, n_out)
    if mode == "bilinear":
        return _linear(n_in, n_out, scale)
    if mode == "bicubic":
        return _cubic(n_in, n_out, scale)
    raise ValueError(f"unknown resize mode {mode!r}; expected one of {MODES}")


def _apply(x: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Resize axis 0 of `x`, summing the taps in torch's order."""
    out = weight[:, 0, None, None] * x[index[:, 0]]
    for k in range(1, index.shape[1]):
        out += weight[:, k, None, None] * x[index[:, k]]
    return out


def interpolate(img: np.ndarray, mode: str, *, size=None, scale=None) -> np.ndarray:
    """Resize an HWC float32 image like F.interpolate(x, size=size | scale_factor=scale, mode).

    The output of `scale` is floor(h * scale) x floor(w * scale).
    """
    if (size is None) == (scale is None):
        raise ValueError("give exactly one of size and scale")
    h, w = img.shape[:2]
    out_h, out_w = size if size is not None else (math.floor(h * scale), math.floor(w * scale))
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resizing {h}x{w} to {out_h}x{out_w}")
    if mode == "area":
        scale = None  # torch pools to the floored size
    x = np.asarray(img, np.float32).reshape(h, w, -1)
    x = _apply(x, *taps(mode, h, out_h, scale))
    x = _apply(np.ascontiguousarray(x.transpose(1, 0, 2)), *taps(mode, w, out_w, scale))
    return np.ascontiguousarray(x.transpose(1, 0, 2)).reshape((out_h, out_w) + img.shape[2:])
