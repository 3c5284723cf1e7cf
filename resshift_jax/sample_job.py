"""The batch restoration job behind `sample.py`: validate the arguments, then restore each image.

Every check that can fail on the user's arguments (missing or mismatched masks, an output
folder that is the input folder, holds it, or cannot be written, a single input image too
large for the settings) runs before any network is built and stops the job. After that,
reading, decoding, restoring and writing one image is one unit of work: any failure of it
(a decoder error, a header over the size limit, the device running out of memory for that
image, a failed write) is reported by file name with a one-line reason and counted, and
the job goes on. A batch that fails in the network is retried image by image, so only the
bad image is lost. Results are written atomically, so a rerun skips exactly the finished
ones.
"""
import dataclasses
import pathlib
import sys
import time
from typing import Callable, Iterable, List, Optional

import numpy as np
from tqdm import tqdm

from resshift_jax import folders, image_io


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
    compilations: int = 0
    compile_seconds: float = 0.0

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.done} images restored, {len(self.failures)} failed, "
                f"{self.skipped} skipped (result exists), {rate:.3g} images/s, "
                f"{self.compilations} compilation{'s' * (self.compilations != 1)} "
                f"({self.compile_seconds:.1f} s)")


class JobError(ValueError):
    """Arguments that make the whole job impossible; raised before any work."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One image to restore: the input, its PNG result, and its mask (inpainting) or None;
    `problem` says why it cannot be, where planning found it (reported as its failure)."""
    src: pathlib.Path
    dst: Optional[pathlib.Path]
    mask: Optional[pathlib.Path] = None
    problem: Optional[str] = None


@dataclasses.dataclass
class Loaded:
    """A job's decoded input: RGB (and alpha) HWC in [0, 1], mask HW in {0, 1} or None."""
    job: Job
    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    mask: Optional[np.ndarray]


def checked_size(src, opts: JobOptions, sf: int) -> tuple[int, int]:
    """(H, W) from the header; `ImageTooLarge` over `image_io.MAX_PIXELS` or when the
    result at x`sf` would be over `--max_output_megapixels` (nothing is decoded)."""
    height, width, _ = image_io.probe(src)
    megapixels = height * width * sf * sf / 1e6
    if megapixels > opts.max_output_megapixels:
        raise image_io.ImageTooLarge(
            src, f"refused: {width}x{height} at x{sf} gives {megapixels:.0f} MP, over the limit "
                 f"of {opts.max_output_megapixels:g} MP (--max_output_megapixels)", height * width)
    return height, width


def _header_or_none(path):
    try:
        return image_io.probe(path)[:2]
    except image_io.ImageReadError:  # reported when the image is read
        return None


def _inputs(in_path: pathlib.Path, out_path) -> list:
    """The input images, without any already under the output folder (earlier results)."""
    out_root = pathlib.Path(out_path).resolve()
    return [p for p in image_io.list_images(in_path)
            if not p.parent.resolve().is_relative_to(out_root)]


def _check_output_folder(in_path: pathlib.Path, out_path) -> None:
    """Refuse an output folder that is or holds the input folder, before any work."""
    out_root = pathlib.Path(out_path)
    in_dir = (in_path if in_path.is_dir() else in_path.parent).resolve()
    if out_root.resolve() == in_dir:
        raise JobError(f"output folder {out_root} is the input folder; choose another one")
    if in_dir.is_relative_to(out_root.resolve()):
        raise JobError(f"output folder {out_root} holds the input folder {in_path}; choose another one")


def plan_job(opts: JobOptions, *, sf: int, needs_mask: bool) -> List[Job]:
    """The jobs, after every up-front check; raises JobError. The output folder is made (to
    check it can be written) only once every other check has passed."""
    if not -2**63 <= opts.seed < 2**64:
        raise JobError(f"seed {opts.seed}: not a 64-bit integer")
    in_path = pathlib.Path(opts.in_path)
    if not in_path.exists():
        raise JobError(f"{in_path}: input path does not exist")
    _check_output_folder(in_path, opts.out_path)
    try:
        inputs = _inputs(in_path, opts.out_path)
    except image_io.ImageReadError as e:
        raise JobError(str(e)) from None
    if not inputs:
        raise JobError(f"{in_path}: no images found (extensions {', '.join(image_io.IMAGE_EXTENSIONS)})")
    if needs_mask and not opts.mask_path:
        raise JobError("this task inpaints: give the masks with --mask_path (file or folder)")
    try:
        plan, clashes = image_io.plan_outputs(inputs, in_path, opts.out_path)
    except ValueError as e:
        raise JobError(str(e)) from None
    if in_path.is_file():  # one image: too large is an argument error
        try:
            checked_size(in_path, opts, sf)
        except image_io.ImageTooLarge as e:
            raise JobError(str(e)) from None
        except image_io.ImageReadError:
            pass  # reported when it is read
    jobs = [Job(src, None, problem=problem) for src, problem in clashes.items()]
    for src, dst in plan.items():
        mask = problem = None
        if needs_mask:
            mask_root = pathlib.Path(opts.mask_path)
            mask = mask_root if mask_root.is_file() else image_io.mask_path_for(src, in_path, mask_root)
            problem = _mask_problem(src, mask)
            if problem and in_path.is_file():  # one image: a bad mask is an argument error
                raise JobError(f"{src}: {problem}")
        jobs.append(Job(src, dst, mask, problem))
    try:
        folders.check_writable(opts.out_path, "output folder")
    except folders.FolderError as e:
        raise JobError(str(e)) from None
    return jobs


def _mask_problem(src: pathlib.Path, mask: pathlib.Path) -> Optional[str]:
    """Why `mask` cannot be `src`'s, from the headers alone, or None."""
    if not mask.is_file():
        return f"its mask {mask} does not exist"
    size, mask_size = _header_or_none(src), _header_or_none(mask)
    if size and mask_size and size != mask_size:
        return (f"its mask {mask} is {mask_size[0]}x{mask_size[1]} but the image is "
                f"{size[0]}x{size[1]} (HxW): they must be the same size")
    return None


def load(job: Job, opts: JobOptions, sf: int) -> Loaded:
    """Size-check, then decode, a job's image and mask; raises on any problem."""
    checked_size(job.src, opts, sf)
    rgb, alpha = image_io.read_image(job.src)
    mask = None
    if job.mask is not None:
        mask = image_io.read_mask(job.mask)
        image_io.check_mask(mask, rgb, job.mask, job.src)
    return Loaded(job, rgb, alpha if opts.alpha == "keep" else None, mask)


def restore(image_restorer, items: List[Loaded]) -> list:
    """The restored images of `items` (one batch group of the restorer).

    Each image's noise is keyed by its file name, so its result is the same in any batch
    (and when a failed batch is retried image by image).
    """
    masks = None if items[0].mask is None else [it.mask[..., None] for it in items]
    return image_restorer.restore_batch([it.rgb for it in items], masks,
                                        [it.job.src.name for it in items])


def reason(err: Exception, src) -> str:
    """One line saying why `src` failed (no traceback)."""
    if isinstance(err, image_io.ImageReadError):
        return err.reason if err.origin == str(src) else str(err)
    text = image_io.error_line(err)
    if isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text:
        return f"out of memory ({text}); a smaller --chop_size, --chop_bs or --bs may fit"
    return text


def _by_group(jobs: List[Job], sizes: dict, image_restorer) -> List[Job]:
    """`jobs` reordered so that images of one batch group (size or bucket, from the headers
    in `sizes`) are consecutive; unreadable headers last (reported when read)."""
    groups: dict = {}
    for job in jobs:
        size = sizes[job.src]
        groups.setdefault(None if size is None else image_restorer.group_of(*size), []).append(job)
    unreadable = groups.pop(None, [])
    return [job for group in groups.values() for job in group] + unreadable


def _groups(items: Iterable[Loaded], bs: int, group_of: Callable):
    """Consecutive items of one batch group, at most `bs` per group."""
    group, key = [], None
    for item in items:
        item_key = group_of(*item.rgb.shape[:2])
        if group and (len(group) == bs or item_key != key):
            yield group
            group = []
        group.append(item)
        key = item_key
    if group:
        yield group


def _restored(image_restorer, group: List[Loaded], fail: Callable):
    """[(item, result)] of a group; a failed batch is retried one image at a time."""
    try:
        return list(zip(group, restore(image_restorer, group)))
    except Exception as err:  # noqa: BLE001 -- contained to this batch, then to its images
        if len(group) == 1:
            fail(group[0].job, err)
            return []
    done = []
    for item in group:
        try:
            done.append((item, restore(image_restorer, [item])[0]))
        except Exception as err:  # noqa: BLE001 -- this image's failure
            fail(item.job, err)
    return done


def run_job(image_restorer, opts: JobOptions, jobs: List[Job], *, out=sys.stdout) -> Summary:
    """Restore every job whose result is missing (or all, with `overwrite`); every failure
    is reported on `out` as `failed: FILE: reason`, counted in the summary, and skipped."""
    summary = Summary()
    start = time.perf_counter()
    compiled_before = (image_restorer.compilations, image_restorer.compile_seconds)
    refused = [job for job in jobs if job.problem]
    todo = [job for job in jobs if not job.problem and (opts.overwrite or not job.dst.exists())]
    sizes = {job.src: _header_or_none(job.src) for job in todo}
    todo = _by_group(todo, sizes, image_restorer)
    summary.skipped = len(jobs) - len(todo) - len(refused)
    bar = tqdm(total=len(todo), unit="img", desc="compiling", file=sys.stderr)
    for job in refused:
        summary.failures.append(f"{job.src}: {job.problem}")
        bar.write(f"failed: {summary.failures[-1]}", file=out)
    image_restorer.prepare([s for s in sizes.values() if s is not None],
                           has_mask=any(job.mask is not None for job in todo))
    bar.set_description("restoring")

    def fail(job: Job, err: Exception) -> None:
        line = f"{job.src}: {reason(err, job.src)}"
        summary.failures.append(line)
        bar.write(f"failed: {line}", file=out)
        bar.update(1)

    def loaded():
        for job in todo:
            try:
                yield load(job, opts, image_restorer.sf)
            except Exception as err:  # noqa: BLE001 -- any failure of one input is its own
                fail(job, err)

    try:
        for group in _groups(loaded(), max(1, opts.bs), image_restorer.group_of):
            for item, result in _restored(image_restorer, group, fail):
                try:
                    image_io.write_png(item.job.dst, result, item.alpha)
                except Exception as err:  # noqa: BLE001 -- a failed write loses this image only
                    fail(item.job, err)
                    continue
                summary.done += 1
                bar.update(1)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
        summary.compilations = image_restorer.compilations - compiled_before[0]
        summary.compile_seconds = image_restorer.compile_seconds - compiled_before[1]
    return summary
