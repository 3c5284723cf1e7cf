"""MATLAB-style bicubic `imresize` (antialiased when shrinking), as separable matrices."""
import math

import numpy as np


def _cubic(x):
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
            + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """(out_len, in_len) weights; borders reflect symmetrically (edge repeated) as MATLAB."""
    width = 4.0 / scale if (scale < 1 and antialias) else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None]
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if (scale < 1 and antialias) else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    src = idx.astype(np.int64) - 1  # 0-based, may fall outside
    src = np.where(src < 0, -src - 1, src)
    src = np.where(src >= in_len, 2 * in_len - 1 - src, src)
    m = np.zeros((out_len, in_len))
    np.add.at(m, (np.repeat(np.arange(out_len), taps), src.ravel()), w.ravel())
    return m


def imresize(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an HW or HWC float image by `scale` (output size ceil(in * scale))."""
    h, w = img.shape[:2]
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    mh, mw = resize_matrix(h, oh, scale, antialias), resize_matrix(w, ow, scale, antialias)
    x = img.astype(np.float64)
    out = np.einsum("oh,hw...->ow...", mh, x)
    out = np.einsum("pw,ow...->op...", mw, out)
    return out.astype(img.dtype if np.issubdtype(img.dtype, np.floating) else np.float32)
