"""Validation sets: LQ folders (with optional GT and masks), or degraded bundled photographs:
"skimage" (clean MATLAB-bicubic LQ) or "degraded" (the training degradation at a fixed seed,
as `make_testset` degrades a test set).

A file of a folder set that cannot be used (corrupt, truncated, over `image_io.MAX_PIXELS`,
a GT not sf times its LQ's size, a mask not its LQ's size) drops its example with a one-line
warning naming it, and the number dropped is logged; a folder that does not exist or a set
left empty is a `ValSetError`, raised before training starts.
"""
import pathlib

import numpy as np
from absl import logging

from resshift_jax import image_io
from resshift_jax.data.imresize import imresize


class ValSetError(ValueError):
    """The validation set cannot be used; the message names the folder and the problem."""


def _images(folder, key: str) -> list:
    if not pathlib.Path(folder).is_dir():
        raise ValSetError(f"{folder}: the validation folder data.val.{key} does not exist")
    return image_io.list_images(pathlib.Path(folder))


def _by_stem(folder, key: str) -> dict:
    return {p.stem: p for p in _images(folder, key)} if folder else {}


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


def _example(path, gts, masks, sf: int) -> dict:
    """One example of a folder set; raises ImageReadError for any of its files that cannot
    be read or whose size does not fit its LQ image."""
    item = {"name": path.name, "lq": image_io.read_image(path)[0]}
    h, w = item["lq"].shape[:2]
    for key, label, files, read, (want_h, want_w) in (
            ("gt", "GT", gts, lambda f: image_io.read_image(f)[0], (h * sf, w * sf)),
            ("mask", "mask", masks, lambda f: image_io.read_mask(f)[..., None], (h, w))):
        if path.stem in files:
            item[key] = read(files[path.stem])
            got_h, got_w = item[key].shape[:2]
            if (got_h, got_w) != (want_h, want_w):
                raise image_io.ImageReadError(files[path.stem], (
                    f"{label} is {got_w}x{got_h}, not the {want_w}x{want_h} its LQ {path} needs"))
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
            raise ValSetError("validation type 'degraded' needs the training data config")
        names = tuple(val_config["names"])
        return degraded_crops(SkimageSource(names).images, names, degradation_for(train_data, sf),
                              gt_size=int(val_config["gt_size"]), grid=int(val_config.get("grid", 1)),
                              seed=int(val_config.get("seed", 0)))[:limit]
    if kind == "skimage":
        return _skimage_set(val_config, sf, limit)
    lq_dir = val_config.get("lq_dir")
    if not lq_dir:
        raise ValSetError("data.val.lq_dir is not set: give the validation LQ folder")
    lqs = _images(lq_dir, "lq_dir")
    gts, masks = (_by_stem(val_config.get(key), key) for key in ("gt_dir", "mask_dir"))
    out, skipped = [], 0
    for path in lqs:
        if limit is not None and len(out) == limit:
            break
        try:
            out.append(_example(path, gts, masks, sf))
        except image_io.ImageReadError as err:
            skipped += 1
            logging.warning("validation set: skipped %s", err)
    if not out:
        raise ValSetError(f"{lq_dir}: no usable validation images ({len(lqs)} image files, "
                          f"{skipped} skipped)")
    if skipped:
        logging.warning("validation set: %d of the %d images of %s skipped, %d used", skipped,
                        skipped + len(out), lq_dir, len(out))
    return out
