"""Score restored images as the papers do: `python -m resshift_jax.evaluate --pred DIR --gt DIR`.

    python -m resshift_jax.evaluate --pred results --gt testdata/imagenet256/gt \
        --metrics psnr,ssim,lpips,clipiqa,musiq --csv scores.csv --json scores.json

Defaults follow the evaluation behind ResShift's and SinSR's tables: SinSR's `evaluate.py`
scores with pyiqa's `psnr`/`ssim` on the Y channel (YCbCr), `lpips` (AlexNet), `clipiqa`
and `musiq`, no border crop; ResShift's own `utils/util_image.py` (`calculate_psnr`,
`calculate_ssim`, `border=0`, `ycbcr=True` as its author answers in its issue #41) is what
PSNR and SSIM compute by default; `--definition pyiqa` gives pyiqa's (SinSR's) values. Full-reference metrics need `--gt`; without it they are left
out. Unmatched or unreadable files are listed on stderr and skipped; the exit status is 1
when any was. See docs/evaluation.md.
"""
import argparse
import sys

from resshift_jax.convert.pth import CheckpointError
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
    p.add_argument("--no_progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        sys.exit(f"error: unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    if args.gt is None and any(n in FULL_REFERENCE for n in names):
        skipped = [n for n in names if n in FULL_REFERENCE]
        print(f"no --gt: full-reference metrics {', '.join(skipped)} left out", file=sys.stderr)
        names = [n for n in names if n not in FULL_REFERENCE]
    if not names:
        sys.exit("error: no metric to compute")
    weights = {n: getattr(args, f"{n.replace('-', '_')}_weights") for n in names
               if hasattr(args, f"{n.replace('-', '_')}_weights")}
    try:
        metrics = [build_metric(n, weights_dir=args.weights_dir, weights=weights,
                                y_channel=not args.no_y_channel, crop_border=args.crop_border,
                                batch_size=args.batch_size, definition=args.definition)
                   for n in names]
    except CheckpointError as err:
        sys.exit(f"error: {err}")
    try:
        report = evaluate_folders(args.pred, args.gt, metrics, args.batch_size,
                                  progress=not args.no_progress)
    except FileNotFoundError as err:
        sys.exit(f"error: {err}")
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
