"""Blur kernels of the Real-ESRGAN degradation (BasicSR conventions), numpy float64.

Gaussian, generalized Gaussian and plateau kernels (isotropic or rotated anisotropic) and
the circular low-pass (sinc) kernel, plus the random draws the training pipeline makes.
"""
import math
from typing import Sequence

import cv2
import numpy as np
from scipy import special


def _grid(size: int) -> np.ndarray:
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def _inverse_sigma(sig_x: float, sig_y: float, theta: float, isotropic: bool) -> np.ndarray:
    if isotropic:
        sigma = np.diag([sig_x ** 2, sig_x ** 2])
    else:
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        sigma = rot @ np.diag([sig_x ** 2, sig_y ** 2]) @ rot.T
    return np.linalg.inv(sigma)


def _quadratic(size, sig_x, sig_y, theta, isotropic):
    grid = _grid(size)
    return np.sum((grid @ _inverse_sigma(sig_x, sig_y, theta, isotropic)) * grid, axis=-1)


def bivariate_gaussian(size, sig_x, sig_y=None, theta=0.0, isotropic=True) -> np.ndarray:
    k = np.exp(-0.5 * _quadratic(size, sig_x, sig_y or sig_x, theta, isotropic))
    return k / k.sum()


def bivariate_generalized_gaussian(size, sig_x, sig_y, theta, beta, isotropic=True):
    k = np.exp(-0.5 * np.power(_quadratic(size, sig_x, sig_y, theta, isotropic), beta))
    return k / k.sum()


def bivariate_plateau(size, sig_x, sig_y, theta, beta, isotropic=True):
    k = np.reciprocal(np.power(_quadratic(size, sig_x, sig_y, theta, isotropic), beta) + 1)
    return k / k.sum()


def circular_lowpass(cutoff: float, size: int, pad_to: int = 0) -> np.ndarray:
    """2-D sinc (circularly symmetric low-pass) kernel, optionally zero-padded to `pad_to`."""
    if size % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {size}")
    c = (size - 1) / 2
    yy, xx = np.meshgrid(np.arange(size) - c, np.arange(size) - c, indexing="ij")
    r = np.sqrt(xx ** 2 + yy ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[int(c), int(c)] = cutoff ** 2 / (4 * np.pi)
    k = k / k.sum()
    if pad_to > size:
        p = (pad_to - size) // 2
        k = np.pad(k, ((p, p), (p, p)))
    return k


def _beta(rng: np.random.Generator, beta_range) -> float:
    return rng.uniform(beta_range[0], 1) if rng.uniform() < 0.5 else rng.uniform(1, beta_range[1])


def random_mixed_kernel(rng: np.random.Generator, kernel_list: Sequence[str],
                        kernel_prob: Sequence[float], size: int, sigma_range, betag_range,
                        betap_range) -> np.ndarray:
    """One kernel of a type drawn with `kernel_prob`, parameters uniform in their ranges."""
    kind = kernel_list[rng.choice(len(kernel_list), p=np.asarray(kernel_prob) / np.sum(kernel_prob))]
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    sig_x = rng.uniform(*sigma_range)
    sig_y, theta = (sig_x, 0.0) if isotropic else (rng.uniform(*sigma_range),
                                                   rng.uniform(-math.pi, math.pi))
    if kind in ("iso", "aniso"):
        return bivariate_gaussian(size, sig_x, sig_y, theta, isotropic)
    if kind.startswith("generalized"):
        return bivariate_generalized_gaussian(size, sig_x, sig_y, theta, _beta(rng, betag_range),
                                              isotropic)
    if kind.startswith("plateau"):
        return bivariate_plateau(size, sig_x, sig_y, theta, _beta(rng, betap_range), isotropic)
    raise ValueError(f"unknown kernel type {kind!r}")


def random_blur_kernel(rng: np.random.Generator, *, max_size: int, sinc_prob: float,
                       kernel_list, kernel_prob, sigma_range, betag_range, betap_range):
    """The dataset's first/second-stage kernel: odd size in [3, max_size), sinc with
    `sinc_prob`, zero-padded to `max_size`."""
    size = int(rng.choice(np.arange(3, max_size, 2)))
    if rng.uniform() < sinc_prob:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        kernel = circular_lowpass(cutoff, size)
    else:
        kernel = random_mixed_kernel(rng, kernel_list, kernel_prob, size, sigma_range,
                                     betag_range, betap_range)
    p = (max_size - size) // 2
    return np.pad(kernel, ((p, p), (p, p)))


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate an HWC image with `kernel`, reflect padding (torch's 'reflect')."""
    out = cv2.filter2D(img.astype(np.float32), -1, kernel.astype(np.float32),
                       borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(img.shape)
