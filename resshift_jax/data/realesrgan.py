"""Real-ESRGAN's second-order degradation (the reference's `realsr` training data), per image.

The reference draws the blur kernels in its dataset and runs the rest batched on the GPU
in its trainer (`prepare_data`); here the whole chain runs per example in numpy from one
`np.random.Generator`, with the same stages, probabilities, ranges and clamps: blur, random
resize (torch's area / bilinear / bicubic, `torch_resize`), Gaussian or Poisson noise
(colour or gray, clipped), clamp and JPEG (BasicSR's DiffJPEG at a float quality, `jpeg`);
a second stage with its own probabilities; then the final sinc filter, resize to the LQ
size and JPEG in random order; clamp and round to 8 bits. Scale, resize mode, noise type
and the second-stage coin are drawn per example where the reference draws them once per
batch; each example's arithmetic is the reference's. (The reference's training-pair queue,
which only reshuffles pairs across batches, is not reproduced; `use_sharp` and
`resize_back`, off in all its configs, are refused.)
"""
import numpy as np

from resshift_jax.data import kernels
from resshift_jax.data.jpeg import jpeg
from resshift_jax.data.torch_resize import MODES, interpolate


def _resize(img, rng, *, size=None, scale=None) -> np.ndarray:
    """F.interpolate with a mode drawn uniformly from area / bilinear / bicubic."""
    return interpolate(img, MODES[rng.integers(3)], size=size, scale=scale)


def gaussian_noise(img: np.ndarray, sigma: float, gray: bool, rng) -> np.ndarray:
    """img + N(0, sigma/255) per pixel (one value for all channels if `gray`), clipped to [0, 1]."""
    shape = img.shape[:2] + (1 if gray else img.shape[2],)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma) / np.float32(255)
    return np.clip(img + noise, 0, 1)


def _levels(img8: np.ndarray) -> np.float32:
    """2 ** ceil(log2(number of distinct 8-bit values)): the Poisson noise's photon scale."""
    distinct = np.count_nonzero(np.bincount(img8.astype(np.int64).ravel(), minlength=256))
    return np.float32(2 ** np.ceil(np.log2(distinct)))


def poisson_noise(img: np.ndarray, scale: float, gray: bool, rng) -> np.ndarray:
    """img + scale * (Poisson(q * L) / L - q), clipped to [0, 1]; q is the image (or its
    luma, 0.2989 R + 0.587 G + 0.114 B, if `gray`) rounded to 8 bits, L its `_levels`."""
    src = img
    if gray:
        r, g, b = (img[..., i] for i in range(3))
        src = (np.float32(0.2989) * r + np.float32(0.587) * g + np.float32(0.114) * b)[..., None]
    img8 = np.clip(np.round(src * np.float32(255)), 0, 255)
    q = img8 / np.float32(255)
    levels = _levels(img8)
    noise = rng.poisson(q * levels).astype(np.float32) / levels - q
    return np.clip(img + noise * np.float32(scale), 0, 1)


def _noise(img, rng, *, gaussian_prob, sigma_range, poisson_range, gray_prob) -> np.ndarray:
    if rng.uniform() < gaussian_prob:
        sigma = rng.uniform(*sigma_range)
        return gaussian_noise(img, sigma, rng.uniform() < gray_prob, rng)
    scale = rng.uniform(*poisson_range)
    return poisson_noise(img, scale, rng.uniform() < gray_prob, rng)


def _jpeg(img, rng, quality_range) -> np.ndarray:
    """Clamp to [0, 1], then JPEG at a float quality uniform in `quality_range`."""
    return jpeg(np.clip(img, 0, 1), np.float32(rng.uniform(*quality_range)))


def _scale(rng, probs, scale_range) -> float:
    kind = rng.choice(3, p=np.asarray(probs) / np.sum(probs))
    return (rng.uniform(1, scale_range[1]), rng.uniform(scale_range[0], 1), 1.0)[kind]


class RealESRGANDegradation:
    """`deg(hq, rng) -> (hq, lq)`: HQ float32 HWC RGB in [0, 1] of `gt_size`; LQ of gt_size/sf."""

    def __init__(self, params, sf: int, gt_size: int):
        self.p, self.sf, self.gt_size = dict(params), int(sf), int(gt_size)
        unsupported = [k for k in ("use_sharp", "resize_back") if self.p.get(k)]
        if unsupported:
            raise ValueError(f"Real-ESRGAN degradation: {unsupported} not supported (off in "
                             "the reference's configs)")

    def kernels(self, rng):
        p = self.p
        k1 = kernels.random_blur_kernel(
            rng, max_size=p["blur_kernel_size"], sinc_prob=p["sinc_prob"],
            kernel_list=p["kernel_list"], kernel_prob=p["kernel_prob"],
            sigma_range=p["blur_sigma"], betag_range=p["betag_range"], betap_range=p["betap_range"])
        k2 = kernels.random_blur_kernel(
            rng, max_size=p["blur_kernel_size2"], sinc_prob=p["sinc_prob2"],
            kernel_list=p["kernel_list2"], kernel_prob=p["kernel_prob2"],
            sigma_range=p["blur_sigma2"], betag_range=p["betag_range2"],
            betap_range=p["betap_range2"])
        if rng.uniform() < p["final_sinc_prob"]:
            size = int(rng.choice(np.arange(3, p["blur_kernel_size2"], 2)))
            sinc = kernels.circular_lowpass(rng.uniform(np.pi / 3, np.pi), size,
                                            pad_to=p["blur_kernel_size2"])
        else:
            sinc = None
        return k1, k2, sinc

    def __call__(self, hq: np.ndarray, rng: np.random.Generator):
        p, sf = self.p, self.sf
        h, w = hq.shape[:2]
        k1, k2, sinc = self.kernels(rng)
        out = kernels.filter2d(hq, k1)
        s = _scale(rng, p["resize_prob"], p["resize_range"])
        out = _resize(out, rng, scale=s)
        out = _noise(out, rng, gaussian_prob=p["gaussian_noise_prob"], sigma_range=p["noise_range"],
                     poisson_range=p["poisson_scale_range"], gray_prob=p["gray_noise_prob"])
        out = _jpeg(out, rng, p["jpeg_range"])
        if rng.uniform() < p["second_order_prob"]:
            if rng.uniform() < p["second_blur_prob"]:
                out = kernels.filter2d(out, k2)
            s = _scale(rng, p["resize_prob2"], p["resize_range2"])
            out = _resize(out, rng, size=(int(h / sf * s), int(w / sf * s)))
            out = _noise(out, rng, gaussian_prob=p["gaussian_noise_prob2"],
                         sigma_range=p["noise_range2"], poisson_range=p["poisson_scale_range2"],
                         gray_prob=p["gray_noise_prob2"])
        if rng.uniform() < 0.5:
            out = _resize(out, rng, size=(h // sf, w // sf))
            if sinc is not None:
                out = kernels.filter2d(out, sinc)
            out = _jpeg(out, rng, p["jpeg_range2"])
        else:
            out = _jpeg(out, rng, p["jpeg_range2"])
            out = _resize(out, rng, size=(h // sf, w // sf))
            if sinc is not None:
                out = kernels.filter2d(out, sinc)
        lq = np.clip(np.round(out * 255.0), 0, 255).astype(np.float32) / 255.0
        return {"hq": hq.astype(np.float32), "lq": lq}
