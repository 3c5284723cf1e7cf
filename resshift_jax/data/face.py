"""GFPGAN-style blind face degradation (the reference's `faceir` training data), per image.

Blur with an iso/aniso Gaussian kernel (sigma up to 15 at the 512 size), bilinear
downsampling by 0.8-32x, Gaussian noise, JPEG, bilinear resize back, optional gray
(also applied to the GT when `gt_gray`), rounding to 8 bits. LQ has the GT's size (sf 1).
"""
import cv2
import numpy as np

from resshift_jax.data import kernels


def opencv_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """OpenCV's JPEG round trip of an RGB float image, through 8 bits (BasicSR's
    `add_jpg_compression`, which the face dataset uses; the Real-ESRGAN chain does not)."""
    bgr = cv2.cvtColor(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


class FaceDegradation:
    """`deg(hq, rng) -> (hq, lq)`, both HxWx3 float32 in [0, 1] of the same size."""

    def __init__(self, params, sf: int = 1, gt_size: int = 512):
        self.p = dict(params)

    def __call__(self, hq: np.ndarray, rng: np.random.Generator):
        p = self.p
        h, w = hq.shape[:2]
        kernel = kernels.random_mixed_kernel(rng, p["kernel_list"], p["kernel_prob"],
                                             p["blur_kernel_size"], p["blur_sigma"], (0.5, 4), (1, 2))
        lq = kernels.filter2d(hq, kernel)
        scale = rng.uniform(*p["downsample_range"])
        lq = cv2.resize(lq, (max(1, int(w // scale)), max(1, int(h // scale))),
                        interpolation=cv2.INTER_LINEAR)
        if p.get("noise_range") is not None:
            sigma = rng.uniform(*p["noise_range"]) / 255.0
            lq = np.clip(lq + rng.normal(0, sigma, lq.shape).astype(np.float32), 0, 1)
        if p.get("jpeg_range") is not None:
            lq = opencv_jpeg(lq, int(rng.uniform(*p["jpeg_range"])))  # truncated, as BasicSR
        lq = cv2.resize(lq, (w, h), interpolation=cv2.INTER_LINEAR)
        if p.get("gray_prob") and rng.uniform() < p["gray_prob"]:
            gray = lambda x: np.repeat(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None], 3, -1)  # noqa
            lq = gray(lq)
            if p.get("gt_gray"):
                hq = gray(hq.astype(np.float32))
        lq = np.clip(np.round(lq * 255.0), 0, 255).astype(np.float32) / 255.0
        return {"hq": hq.astype(np.float32), "lq": lq}
