"""PSNR and SSIM of padded batches in JAX, as the reference's `utils/util_image.py` defines them.

`calculate_psnr` / `calculate_ssim(im1, im2, border, ycbcr)` there: uint8 images, optionally
the rounded MATLAB Y channel (computed on the host by `resshift_jax.metrics.rgb2y`, exactly),
`border` pixels cropped, PSNR from the float64 MSE, SSIM with an 11x11 Gaussian window
(sigma 1.5) over the valid region, per channel then averaged. Here a batch of planes holding
integer values 0..255 is padded to one bucket shape, each image's true (h, w) given, and
only its pixels (PSNR) or the window positions inside it (SSIM) are averaged, so one compiled
program serves every image size in the bucket. float32 with the planes shifted by 128 keeps
the local variances (E[x^2] - mu^2) accurate to ~1e-6 relative of the float64 reference.
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


def psnr(a, b, hw):
    """(B,) PSNR in dB of (B, H, W, C) planes in [0, 255]; inf where identical."""
    mask = _inside(a.shape, hw)
    err = jnp.sum(jnp.where(mask, (a - b) ** 2, 0.0), axis=(1, 2, 3))
    mse = err / (hw[:, 0] * hw[:, 1] * a.shape[-1])
    return jnp.where(mse == 0, jnp.inf, 10.0 * jnp.log10(255.0 ** 2 / jnp.maximum(mse, 1e-30)))


def _filter_valid(x):
    """Separable 11x11 Gaussian over H and W, valid part (cv2.filter2D(...)[5:-5, 5:-5])."""
    w = jnp.asarray(_WINDOW, jnp.float32)
    n = len(_WINDOW)
    x = sum(w[k] * x[:, k:x.shape[1] - n + 1 + k] for k in range(n))
    return sum(w[k] * x[:, :, k:x.shape[2] - n + 1 + k] for k in range(n))


def ssim(a, b, hw):
    """(B,) SSIM of (B, H, W, C) planes in [0, 255], mean over valid windows and channels."""
    a, b = a - 128.0, b - 128.0
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a ** 2
    var_b = _filter_valid(b * b) - mu_b ** 2
    cov = _filter_valid(a * b) - mu_a * mu_b
    mu_a, mu_b = mu_a + 128.0, mu_b + 128.0
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a ** 2 + mu_b ** 2 + _C1) * (var_a + var_b + _C2)
    mask = _inside(num.shape, hw, margin=len(_WINDOW) - 1)
    count = (hw[:, 0] - 10) * (hw[:, 1] - 10) * a.shape[-1]
    return jnp.sum(jnp.where(mask, num / den, 0.0), axis=(1, 2, 3)) / count


def planes(rgb8: np.ndarray, y_channel: bool, crop_border: int) -> np.ndarray:
    """HWC uint8 RGB -> float32 (h, w, 1 or 3) planes the reference compares, border cropped."""
    from resshift_jax.metrics import rgb2y
    x = rgb2y(rgb8)[..., None] if y_channel else rgb8
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
    return x.astype(np.float32)
