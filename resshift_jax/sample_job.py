"""The batch restoration job behind `sample.py`: validate everything, then restore each image.

Every check that can fail on the user's arguments (missing or mismatched masks, output
folder equal to the input folder, images too large for the settings) runs before any
network is built. A file that cannot be read is reported by name and skipped; the job
goes on and ends with a summary line and a non-zero exit status.
"""
import dataclasses
import pathlib
import sys
import time
from typing import List, Optional

import numpy as np
from PIL import Image
from tqdm import tqdm

from resshift_jax import image_io


@dataclasses.dataclass
class JobOptions:
    in_path: str
    out_path: str
    mask_path: Optional[str] = None
    bs: int = 1
    chop_size: int = 512
    chop_stride: int = 448
    chop_bs: int = 1
    blend: str = "gaussian"
    seed: int = 12345
    alpha: str = "keep"
    overwrite: bool = False
    max_output_megapixels: float = 256.0


@dataclasses.dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failures: List[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.done} images restored, {len(self.failures)} failed, "
                f"{self.skipped} skipped (result exists), {rate:.3g} images/s")


class JobError(ValueError):
    """Arguments that make the whole job impossible; raised before any work."""


def _header_size(path: pathlib.Path):
    """(H, W) from the file header without decoding, or None if unreadable (reported later)."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:  # any decoder failure is reported per file when it is read
        return None


def plan_job(opts: JobOptions, *, sf: int, needs_mask: bool):
    """[(input, output, mask or None)] after every up-front check; raises JobError."""
    in_path = pathlib.Path(opts.in_path)
    if not in_path.exists():
        raise JobError(f"{in_path}: input path does not exist")
    inputs = image_io.list_images(in_path)
    if not inputs:
        raise JobError(f"{in_path}: no images found (extensions {', '.join(image_io.IMAGE_EXTENSIONS)})")
    if needs_mask and not opts.mask_path:
        raise JobError("this task inpaints: give the masks with --mask_path (file or folder)")
    try:
        plan = image_io.plan_outputs(inputs, in_path, opts.out_path)
    except ValueError as e:
        raise JobError(str(e)) from None
    jobs = []
    for src, dst in plan.items():
        mask = None
        if needs_mask:
            mask_root = pathlib.Path(opts.mask_path)
            mask = mask_root if mask_root.is_file() else image_io.mask_path_for(src, in_path, mask_root)
            if not mask.is_file():
                raise JobError(f"{src}: its mask {mask} does not exist")
            size, mask_size = _header_size(src), _header_size(mask)
            if size and mask_size and size != mask_size:
                raise JobError(f"mask {mask} is {mask_size[0]}x{mask_size[1]} but image {src} "
                               f"is {size[0]}x{size[1]}: they must be the same size")
        size = _header_size(src)
        if size and size[0] * size[1] * sf * sf / 1e6 > opts.max_output_megapixels:
            raise JobError(f"{src}: {size[0]}x{size[1]} at x{sf} gives "
                           f"{size[0] * size[1] * sf * sf / 1e6:.0f} MP, over the limit of "
                           f"{opts.max_output_megapixels:g} MP (--max_output_megapixels)")
        jobs.append((src, dst, mask))
    return jobs


def _groups(items, bs: int):
    """Consecutive items of one image size, at most `bs` per group."""
    group = []
    for item in items:
        if group and (len(group) == bs or group[0][3].shape != item[3].shape):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def run_job(image_restorer, opts: JobOptions, jobs, *, out=sys.stdout) -> Summary:
    """Restore every planned image; unreadable ones are reported and skipped."""
    summary = Summary()
    start = time.perf_counter()
    todo = []
    for src, dst, mask_path in jobs:
        if dst.exists() and not opts.overwrite:
            summary.skipped += 1
            continue
        todo.append((src, dst, mask_path))

    def loaded():
        for src, dst, mask_path in todo:
            try:
                rgb, alpha = image_io.read_image(src)
                mask = None
                if mask_path is not None:
                    mask = image_io.read_mask(mask_path)
                    image_io.check_mask(mask, rgb, mask_path, src)
            except (image_io.ImageReadError, ValueError) as e:
                summary.failures.append(str(e))
                print(f"skipped: {e}", file=out)
                continue
            yield src, dst, alpha, rgb, mask

    bar = tqdm(total=len(todo), unit="img", desc="restoring", file=sys.stderr)
    for group in _groups(loaded(), max(1, opts.bs)):
        images = np.stack([g[3] for g in group])
        masks = None if group[0][4] is None else np.stack([g[4][..., None] for g in group])
        pad = opts.bs - len(group) if max(images.shape[1:3]) <= opts.chop_size else 0
        if pad:  # a fixed batch shape: one compilation per image size
            images = np.concatenate([images, np.repeat(images[-1:], pad, 0)])
            masks = None if masks is None else np.concatenate([masks, np.repeat(masks[-1:], pad, 0)])
        names = [g[0].name for g in group] + [group[-1][0].name] * pad  # noise per file
        results = image_restorer.restore_batch(images, masks, names)
        for (src, dst, alpha, _, _), result in zip(group, results):
            image_io.write_png(dst, result, alpha if opts.alpha == "keep" else None)
            summary.done += 1
            bar.update(1)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
