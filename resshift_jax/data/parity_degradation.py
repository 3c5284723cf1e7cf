"""The `degradation` parity fixture: kernels, per-example filtering, imresize, Y, metrics."""
import math
import re

import numpy as np

from resshift_jax import metrics
from resshift_jax.data import imresize, kernels


def _kernel(spec: str) -> np.ndarray:
    """Evaluate a kernel description of the fixture, e.g. 'bivariate_plateau(15, 1.2, ...)'."""
    name, args = re.fullmatch(r"(\w+)\((.*)\)", spec).groups()
    pos, kw, flags = [], {}, set()
    for part in (p.strip() for p in args.split(",")):
        if "=" in part:
            key, value = part.split("=")
            kw[key.strip()] = float(eval(value, {"pi": math.pi}))  # noqa: S307 (fixture text)
        elif re.fullmatch(r"[a-z_]+", part):
            flags.add(part)
        else:
            pos.append(float(part))
    if name == "circular_lowpass_kernel":
        return kernels.circular_lowpass(kw["cutoff"], int(kw["kernel_size"]), int(kw.get("pad_to", 0)))
    size = int(pos.pop(0))
    sig_x = kw.get("sig_x", pos[0] if pos else None)
    sig_y = kw.get("sig_y", pos[1] if len(pos) > 1 else sig_x)
    iso = "isotropic" in flags
    if name == "bivariate_Gaussian":
        return kernels.bivariate_gaussian(size, sig_x, sig_y, kw.get("theta", 0.0), iso)
    fn = {"bivariate_generalized_Gaussian": kernels.bivariate_generalized_gaussian,
          "bivariate_plateau": kernels.bivariate_plateau}[name]
    return fn(size, sig_x, sig_y, kw.get("theta", 0.0), kw["beta"], iso)


def run_degradation_fixture(entry: dict, io: dict) -> dict:
    out = {f"kernel_{k}": _kernel(v) for k, v in entry["kernel_params"].items()}
    images = io["filter2d_in"].transpose(0, 2, 3, 1)
    out["filter2d_out"] = np.stack([kernels.filter2d(img, k) for img, k in
                                    zip(images, io["filter2d_kernels"])]).transpose(0, 3, 1, 2)
    out["imresize_down4"] = imresize.imresize(io["photo"], 1 / 4)
    out["imresize_up2"] = imresize.imresize(io["photo"], 2)
    out["ycbcr_y"] = metrics.rgb2y(io["photo"]).astype(np.float32)
    a, b = io["metric_a"], io["metric_b"]
    out.update(psnr_rgb=np.float64(metrics.psnr(a, b, 4)), psnr_y=np.float64(metrics.psnr(a, b, 4, True)),
               ssim_rgb=np.float64(metrics.ssim(a, b, 4)), ssim_y=np.float64(metrics.ssim(a, b, 4, True)))
    return out
