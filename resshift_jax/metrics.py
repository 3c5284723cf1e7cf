"""Image quality metrics as the reference computes them (MATLAB Y channel, PSNR, SSIM).

numpy versions take uint8 HWC RGB; `psnr`/`ssim` crop `crop_border` pixels and can work
on the Y channel of MATLAB's rgb2ycbcr (rounded, as for uint8 input in the reference).
"""
import math

import cv2
import numpy as np

_Y = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb2y(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma: uint8 in -> rounded uint8-valued float64; float [0,1] in -> [0,1]."""
    if img.dtype == np.uint8:
        return np.round(img.astype(np.float64) @ _Y + 16.0)
    return (img.astype(np.float64) * 255.0 @ _Y + 16.0) / 255.0


def _prepare(a, b, crop_border, y_channel):
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if y_channel:
        a, b = rgb2y(a), rgb2y(b)
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    a, b = _prepare(a, b, crop_border, y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def _ssim_plane(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = cv2.getGaussianKernel(11, 1.5)
    win = g @ g.T
    f = lambda x: cv2.filter2D(x, -1, win)[5:-5, 5:-5]  # noqa: E731  (valid part)
    mu_a, mu_b = f(a), f(b)
    var_a, var_b, cov = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return float(np.mean(num / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))))


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """SSIM (11x11 Gaussian window, sigma 1.5), per channel then averaged."""
    a, b = _prepare(a, b, crop_border, y_channel)
    if a.ndim == 2:
        return _ssim_plane(a, b)
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(a.shape[-1])]))
