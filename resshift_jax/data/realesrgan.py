"""Real-ESRGAN's second-order degradation (the reference's `realsr` training data), per image.

The reference draws the blur kernels in its dataset and runs the rest batched on the GPU
in its trainer; here the whole chain runs per example in numpy/OpenCV from one
`np.random.Generator`, with the same stages, probabilities and ranges: blur, random
resize (area / bilinear / bicubic), Gaussian or Poisson noise (colour or gray), JPEG; a
second stage with its own probabilities; then the final sinc filter, resize to the LQ
size and JPEG in random order; clamp and round to 8 bits. (The reference's training-pair
queue, which only reshuffles pairs across batches, is not reproduced.)
"""
import cv2
import numpy as np

from resshift_jax.data import kernels

_MODES = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def _resize(img, height: int, width: int, rng) -> np.ndarray:
    out = cv2.resize(img, (max(width, 1), max(height, 1)), interpolation=_MODES[rng.integers(3)])
    return out.reshape(out.shape[:2] + (img.shape[2],))


def _noise(img, rng, *, gaussian_prob, sigma_range, poisson_range, gray_prob) -> np.ndarray:
    gray = rng.uniform() < gray_prob
    if rng.uniform() < gaussian_prob:
        sigma = rng.uniform(*sigma_range) / 255.0
        shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
        noise = rng.normal(0.0, sigma, shape).astype(np.float32)
    else:
        scale = rng.uniform(*poisson_range)
        src = img.mean(axis=-1, keepdims=True) if gray else img
        src = np.clip(src, 0, 1)
        levels = 2 ** np.ceil(np.log2(max(len(np.unique(np.round(src * 255))), 2)))
        noise = (rng.poisson(src * levels) / levels - src).astype(np.float32) * scale
    return np.clip(img + noise, 0.0, 1.0)


def _jpeg(img, rng, quality_range) -> np.ndarray:
    quality = int(round(rng.uniform(*quality_range)))
    bgr = cv2.cvtColor(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def _scale(rng, probs, scale_range) -> float:
    kind = rng.choice(3, p=np.asarray(probs) / np.sum(probs))
    return (rng.uniform(1, scale_range[1]), rng.uniform(scale_range[0], 1), 1.0)[kind]


class RealESRGANDegradation:
    """`deg(hq, rng) -> (hq, lq)`: HQ float32 HWC RGB in [0, 1] of `gt_size`; LQ of gt_size/sf."""

    def __init__(self, params, sf: int, gt_size: int):
        self.p, self.sf, self.gt_size = dict(params), int(sf), int(gt_size)

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
        out = _resize(out, int(h * s), int(w * s), rng)
        out = _noise(out, rng, gaussian_prob=p["gaussian_noise_prob"], sigma_range=p["noise_range"],
                     poisson_range=p["poisson_scale_range"], gray_prob=p["gray_noise_prob"])
        out = _jpeg(out, rng, p["jpeg_range"])
        if rng.uniform() < p["second_order_prob"]:
            if rng.uniform() < p["second_blur_prob"]:
                out = kernels.filter2d(out, k2)
            s = _scale(rng, p["resize_prob2"], p["resize_range2"])
            out = _resize(out, int(h / sf * s), int(w / sf * s), rng)
            out = _noise(out, rng, gaussian_prob=p["gaussian_noise_prob2"],
                         sigma_range=p["noise_range2"], poisson_range=p["poisson_scale_range2"],
                         gray_prob=p["gray_noise_prob2"])
        if rng.uniform() < 0.5:
            out = _resize(out, h // sf, w // sf, rng)
            if sinc is not None:
                out = kernels.filter2d(out, sinc)
            out = _jpeg(out, rng, p["jpeg_range2"])
        else:
            out = _jpeg(out, rng, p["jpeg_range2"])
            out = _resize(out, h // sf, w // sf, rng)
            if sinc is not None:
                out = kernels.filter2d(out, sinc)
        lq = np.clip(np.round(out * 255.0), 0, 255).astype(np.float32) / 255.0
        return hq.astype(np.float32), lq
