"""Pairing restored images with their ground truth by name, and reading them as uint8 RGB.

Files pair by their path relative to the folder without the extension (`a/b.png` pairs with
`a/b.JPEG`): restorers write PNG for JPEG inputs. Unmatched and ambiguous names are reported,
not fatal; so is an unreadable file or a size mismatch when the images are read.
"""
import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from resshift_jax.image_io import ImageReadError, list_images, probe, read_image


@dataclasses.dataclass(frozen=True)
class Pair:
    name: str                  # relative path of the restored image
    pred: Path
    gt: Optional[Path]


def _by_stem(root: Path, problems: list, role: str) -> dict:
    out = {}
    for path in list_images(root):
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in out:
            problems.append(f"{path}: same name as {out[key]} in {role}; both skipped")
            out[key] = None
        else:
            out[key] = path
    return out


def pair_files(pred_dir, gt_dir=None) -> tuple[list, list]:
    """([Pair, ...] sorted by name, [problem message, ...])."""
    problems: list = []
    pred_root = Path(pred_dir)
    preds = _by_stem(pred_root, problems, "--pred")
    gts = _by_stem(Path(gt_dir), problems, "--gt") if gt_dir is not None else None
    pairs = []
    for key, path in sorted(preds.items()):
        if path is None:
            continue
        if gts is None:
            pairs.append(Pair(path.relative_to(pred_root).as_posix(), path, None))
        elif gts.get(key) is None:
            if key not in gts:
                problems.append(f"{path}: no ground truth named {key}.* in {gt_dir}; skipped")
        else:
            pairs.append(Pair(path.relative_to(pred_root).as_posix(), path, gts[key]))
    if gts is not None:
        problems += [f"{path}: no restored image named {key}.* in {pred_dir}; skipped"
                     for key, path in sorted(gts.items()) if path is not None and key not in preds]
    return pairs, problems


def image_size(path) -> Optional[tuple]:
    """(h, w) from the file header, or None when it cannot be read or is over the size
    limit (the image is then reported by name when it is read)."""
    try:
        return probe(path)[:2]
    except ImageReadError:
        return None


def read_rgb8(path) -> np.ndarray:
    """HWC uint8 RGB (16-bit inputs rounded to 8 bits, alpha dropped); ImageReadError names it."""
    rgb, _ = read_image(path)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def read_pair(pair: Pair) -> tuple:
    """(pred uint8, gt uint8 or None); ImageReadError for unreadable or mismatched files."""
    pred = read_rgb8(pair.pred)
    if pair.gt is None:
        return pred, None
    gt = read_rgb8(pair.gt)
    if gt.shape != pred.shape:
        raise ImageReadError(f"{pair.pred}: size {pred.shape[1]}x{pred.shape[0]} differs from "
                             f"its ground truth {pair.gt} ({gt.shape[1]}x{gt.shape[0]})")
    return pred, gt
