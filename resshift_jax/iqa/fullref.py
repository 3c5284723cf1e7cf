"""PSNR and SSIM of padded batches in JAX, as ResShift's `utils/util_image.py` or pyiqa define them.

`calculate_psnr` / `calculate_ssim(im1, im2, border, ycbcr)` there: uint8 images, optionally
the rounded MATLAB Y channel (computed on the host by `resshift_jax.metrics.rgb2y`, exactly),
`border` pixels cropped, PSNR from the float64 MSE, SSIM with an 11x11 Gaussian window
(sigma 1.5) over the valid region, per channel then averaged. Here a batch of planes holding
integer values 0..255 is padded to one bucket shape, each image's true (h, w) given, and
only its pixels (PSNR) or the window positions inside it (SSIM) are averaged, so one compiled
program serves every image size in the bucket. float32 with the planes shifted by 128 keeps
the local variances (E[x^2] - mu^2) accurate to ~1e-6 relative of the float64 reference.

`definition="pyiqa"` is what SinSR's evaluate.py gets from pyiqa's `psnr` / `ssim` with
`test_y_channel=True, color_space='ycbcr'`: PSNR on the unrounded float32 Y in [0, 1] with
10 log10(1 / (MSE + 1e-8)); SSIM on Y * 255 rounded (as util_image) with the contrast-structure
term clamped at 0 (`F.relu(cs_map)`). On real pairs the two PSNRs differ by up to ~0.015 dB
per image, the SSIMs by ~1e-3 (docs/evaluation.md).
"""
import cv2
import jax.numpy as jnp
import numpy as np

_WINDOW = cv2.getGaussianKernel(11, 1.5)[:, 0]
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _inside(shape, hw, margin: int = 0):
    """(B, H, W, 1) mask of positions i < h - margin, j < w - margin per image."""
    rows = jnp.arange(shape[1])[None, :, None] < (hw[:, 0, None, None] - margin)
    cols = jnp.arange(shape[2])[None, None, :] < (hw[:, 1, None, None] - margin)
    return (rows & cols)[..., None]


def psnr(a, b, hw, pyiqa: bool = False):
    """(B,) PSNR in dB of (B, H, W, C) planes in [0, 255] (util_image: inf where identical),
    or in [0, 1] with pyiqa's eps."""
    mask = _inside(a.shape, hw)
    err = jnp.sum(jnp.where(mask, (a - b) ** 2, 0.0), axis=(1, 2, 3))
    mse = err / (hw[:, 0] * hw[:, 1] * a.shape[-1])
    if pyiqa:
        return 10.0 * jnp.log10(1.0 / (mse + 1e-8))
    return jnp.where(mse == 0, jnp.inf, 10.0 * jnp.log10(255.0 ** 2 / jnp.maximum(mse, 1e-30)))


def _filter_valid(x):
    """Separable 11x11 Gaussian over H and W, valid part (cv2.filter2D(...)[5:-5, 5:-5])."""
    w = jnp.asarray(_WINDOW, jnp.float32)
    n = len(_WINDOW)
    x = sum(w[k] * x[:, k:x.shape[1] - n + 1 + k] for k in range(n))
    return sum(w[k] * x[:, :, k:x.shape[2] - n + 1 + k] for k in range(n))


def ssim(a, b, hw, pyiqa: bool = False):
    """(B,) SSIM of (B, H, W, C) planes in [0, 255], mean over valid windows and channels."""
    a, b = a - 128.0, b - 128.0
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a ** 2
    var_b = _filter_valid(b * b) - mu_b ** 2
    cov = _filter_valid(a * b) - mu_a * mu_b
    mu_a, mu_b = mu_a + 128.0, mu_b + 128.0
    cs = (2 * cov + _C2) / (var_a + var_b + _C2)
    if pyiqa:
        cs = jnp.maximum(cs, 0.0)
    ratio = (2 * mu_a * mu_b + _C1) / (mu_a ** 2 + mu_b ** 2 + _C1) * cs
    mask = _inside(ratio.shape, hw, margin=len(_WINDOW) - 1)
    count = (hw[:, 0] - 10) * (hw[:, 1] - 10) * a.shape[-1]
    return jnp.sum(jnp.where(mask, ratio, 0.0), axis=(1, 2, 3)) / count


_PYIQA_Y = np.array([65.481, 128.553, 24.966], np.float32)


def planes(rgb8: np.ndarray, y_channel: bool, crop_border: int, definition: str = "util_image",
           unit: bool = False) -> np.ndarray:
    """HWC uint8 RGB -> float32 (h, w, 1 or 3) planes compared, border cropped: [0, 255]
    integers, or (pyiqa's PSNR, `unit`) values in [0, 1] with pyiqa's unrounded float32 Y."""
    from resshift_jax.metrics import rgb2y
    if crop_border:
        rgb8 = rgb8[crop_border:-crop_border, crop_border:-crop_border]
    if definition == "util_image":
        return (rgb2y(rgb8)[..., None] if y_channel else rgb8).astype(np.float32)
    if definition != "pyiqa":
        raise ValueError(f"unknown PSNR/SSIM definition {definition!r} (util_image, pyiqa)")
    x = rgb8.astype(np.float32) / np.float32(255)
    if y_channel:
        x = ((x @ _PYIQA_Y + np.float32(16)) / np.float32(255))[..., None]
    return x if unit else np.round(x * np.float32(255))
