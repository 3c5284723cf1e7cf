"""Validation sets: LQ folders (with optional GT and masks), or degraded bundled photographs:
"skimage" (clean MATLAB-bicubic LQ) or "degraded" (the training degradation at a fixed seed,
as `make_testset` degrades a test set).

A file of a folder set that cannot be read (corrupt, truncated, over `image_io.MAX_PIXELS`)
drops its example with a warning naming it; a set left empty is an error.
"""
import pathlib

import numpy as np
from absl import logging

from resshift_jax import image_io
from resshift_jax.data.imresize import imresize


def _by_stem(folder):
    return {p.stem: p for p in image_io.list_images(pathlib.Path(folder))} if folder else {}


def _skimage_set(val_config, sf: int, limit) -> list:
    from resshift_jax.data.sources import SkimageSource
    size, names = int(val_config["gt_size"]), tuple(val_config["names"])
    out = []
    for name, img in zip(names, SkimageSource(names).images[:limit]):
        h, w = img.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        gt = img[top:top + size, left:left + size].astype(np.float32) / 255.0
        out.append({"name": f"{name}.png", "lq": np.clip(imresize(gt, 1.0 / sf), 0, 1), "gt": gt})
    return out


def _example(path, gts, masks) -> dict:
    """One example of a folder set; raises ImageReadError for any of its files."""
    item = {"name": path.name, "lq": image_io.read_image(path)[0]}
    if path.stem in gts:
        item["gt"] = image_io.read_image(gts[path.stem])[0]
    if path.stem in masks:
        item["mask"] = image_io.read_mask(masks[path.stem])[..., None]
    return item


def load_val_set(val_config, sf: int, train_data=None) -> list:
    """[{name, lq, gt?, mask?}]: float32 HWC in [0, 1] (mask HW1 in {0, 1}, 1 = to fill), as
    `ImageRestorer` takes them; `name` is the LQ file's name, which keys its noise.
    `train_data` (config.data.train) is the degradation of type "degraded"."""
    kind = val_config.get("type", "folder")
    limit = int(val_config.get("max_images") or 0) or None
    if kind == "degraded":
        from resshift_jax.data.degradations import degradation_for
        from resshift_jax.data.make_testset import degraded_crops
        from resshift_jax.data.sources import SkimageSource
        if train_data is None:
            raise ValueError("validation type 'degraded' needs the training data config")
        names = tuple(val_config["names"])
        return degraded_crops(SkimageSource(names).images, names, degradation_for(train_data, sf),
                              gt_size=int(val_config["gt_size"]), grid=int(val_config.get("grid", 1)),
                              seed=int(val_config.get("seed", 0)))[:limit]
    if kind == "skimage":
        return _skimage_set(val_config, sf, limit)
    lq_dir = pathlib.Path(val_config["lq_dir"])
    if not lq_dir.is_dir():
        raise FileNotFoundError(f"{lq_dir}: validation LQ folder does not exist")
    gts, masks = _by_stem(val_config.get("gt_dir")), _by_stem(val_config.get("mask_dir"))
    out, skipped = [], 0
    for path in image_io.list_images(lq_dir):
        if limit is not None and len(out) == limit:
            break
        try:
            out.append(_example(path, gts, masks))
        except image_io.ImageReadError as err:
            skipped += 1
            logging.warning("validation set: skipped %s", err)
    if not out:
        raise ValueError(f"{lq_dir}: no readable validation images ({skipped} skipped)")
    return out
