"""Score restored images as the papers do: `python -m resshift_jax.evaluate --pred DIR --gt DIR`.

    python -m resshift_jax.evaluate --pred results --gt testdata/imagenet256/gt \
        --metrics psnr,ssim,lpips,clipiqa,musiq --csv scores.csv --json scores.json

Defaults follow the evaluation behind ResShift's and SinSR's tables: SinSR's `evaluate.py`
scores with pyiqa's `psnr`/`ssim` on the Y channel (YCbCr), `lpips` (AlexNet), `clipiqa`
and `musiq`, no border crop; ResShift's own `utils/util_image.py` (`calculate_psnr`,
`calculate_ssim`, `border=0`, `ycbcr=True` as its author answers in its issue #41) is what
PSNR and SSIM compute by default; `--definition pyiqa` gives pyiqa's (SinSR's) values. Full-reference metrics need `--gt`; without it they are left
out. Unmatched or unreadable files are listed on stderr and skipped; the exit status is 1
when any was. Unusable arguments (a missing or empty folder, an unknown metric, a report file
that exists or would land among the images) are one line and status 2 before any scoring.
See docs/evaluation.md.
"""
import argparse
import sys
from pathlib import Path

from resshift_jax.convert.pth import CheckpointError
from resshift_jax.folders import FolderError, check_writable
from resshift_jax.image_io import list_images
from resshift_jax.iqa.registry import FULL_REFERENCE, METRICS, build_metric
from resshift_jax.iqa.runner import evaluate_folders, format_table, write_csv, write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pred", required=True, help="folder of restored images")
    p.add_argument("--gt", help="folder of ground-truth images (same names, any extension)")
    p.add_argument("--metrics", default="psnr,ssim,lpips,clipiqa,musiq",
                   help=f"comma-separated, of {','.join(METRICS)}")
    p.add_argument("--crop_border", type=int, default=0, help="pixels cropped for PSNR/SSIM")
    p.add_argument("--no_y_channel", action="store_true", help="PSNR/SSIM on RGB, not on Y")
    p.add_argument("--definition", choices=["util_image", "pyiqa"], default="util_image",
                   help="PSNR/SSIM as ResShift's utils/util_image.py (default) or as pyiqa "
                        "computes them in SinSR's evaluate.py")
    p.add_argument("--weights_dir", default="weights", help="where pyiqa's weight files are")
    for name in ("lpips", "lpips-vgg", "clipiqa", "musiq"):
        p.add_argument(f"--{name.replace('-', '_')}_weights", help=f"explicit {name} weights file")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--csv", help="per-image scores to this CSV file")
    p.add_argument("--json", help="per-image scores, means and problems to this JSON file")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing --csv/--json files (default: refuse)")
    p.add_argument("--no_progress", action="store_true")
    return p.parse_args(argv)


class ArgumentError(ValueError):
    """An unusable argument; the message names it and says why, in one line."""


def _metric_names(args) -> list:
    """The metrics asked for, less the full-reference ones when there is no --gt."""
    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ArgumentError(f"--metrics: unknown metric(s) {', '.join(unknown)}; "
                            f"known: {', '.join(METRICS)}")
    if args.gt is None and any(n in FULL_REFERENCE for n in names):
        skipped = [n for n in names if n in FULL_REFERENCE]
        print(f"no --gt: full-reference metrics {', '.join(skipped)} left out", file=sys.stderr)
        names = [n for n in names if n not in FULL_REFERENCE]
    if not names:
        raise ArgumentError(f"--metrics {args.metrics!r}: no metric to compute")
    return names


def _check_numbers(args) -> None:
    if args.batch_size < 1:
        raise ArgumentError(f"--batch_size {args.batch_size}: give 1 or more")
    if args.crop_border < 0:
        raise ArgumentError(f"--crop_border {args.crop_border}: give 0 or more pixels")


def _check_folders(args) -> None:
    """--pred and --gt: existing folders with images (files pair by name within them)."""
    for flag in ("pred", "gt"):
        folder = getattr(args, flag)
        if folder is None:
            continue
        if not Path(folder).exists():
            raise ArgumentError(f"--{flag} {folder}: no such folder")
        if not Path(folder).is_dir():
            raise ArgumentError(f"--{flag} {folder}: is a file; give a folder of images")
        if not list_images(folder):
            raise ArgumentError(f"--{flag} {folder}: no images in it")


def _check_reports(args) -> None:
    """--csv/--json: outside --pred and --gt, two files, not folders, not existing unless
    --overwrite, in a folder that can be written."""
    inputs = [Path(d).resolve() for d in (args.pred, args.gt) if d is not None]
    taken = {}
    for flag in ("csv", "json"):
        value = getattr(args, flag)
        if not value:
            continue
        path = Path(value)
        where = path.resolve()
        if any(d == where or d in where.parents for d in inputs):
            raise ArgumentError(f"--{flag} {value}: inside --pred or --gt, whose images it "
                                "could replace; write it elsewhere")
        if where in taken:
            raise ArgumentError(f"--{flag} {value}: the same file as --{taken[where]}")
        taken[where] = flag
        if path.is_dir():
            raise ArgumentError(f"--{flag} {value}: is a folder; give a file name")
        if path.exists() and not args.overwrite:
            raise ArgumentError(f"--{flag} {value}: already exists; --overwrite replaces it")
        check_writable(path.parent, f"folder of --{flag}")


def _build_metrics(names: list, args) -> list:
    weights = {n: getattr(args, f"{n.replace('-', '_')}_weights") for n in names
               if hasattr(args, f"{n.replace('-', '_')}_weights")}
    return [build_metric(n, weights_dir=args.weights_dir, weights=weights,
                         y_channel=not args.no_y_channel, crop_border=args.crop_border,
                         batch_size=args.batch_size, definition=args.definition)
            for n in names]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        _check_numbers(args)
        _check_folders(args)
        names = _metric_names(args)
        _check_reports(args)
        metrics = _build_metrics(names, args)
    except (ArgumentError, FolderError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = evaluate_folders(args.pred, args.gt, metrics, args.batch_size,
                              progress=not args.no_progress)
    for line in report.problems:
        print(line, file=sys.stderr)
    print(format_table(report))
    if args.csv:
        write_csv(report, args.csv)
    if args.json:
        write_json(report, args.json)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
