"""End to end over a folder of real photographs of many sizes: compile included.

    python bench/folder_bench.py --reference ~/ResShift --torch_python ~/torch-venv/bin/python

Cuts `--crops` crops of seeded random sizes (`--min_size`..`--max_size` LQ pixels a side)
from different RealSet65 photographs, then restores the folder with the v3 architecture
(random weights) in fresh processes: ours at the defaults (`--pad auto`: the reference's
padding on a CPU, buckets on an accelerator) with an empty persistent compilation cache
(every program compiled, in parallel), ours again with that cache (compilation read back),
ours with `--pad bucket` (its own cache; skip with `--no_bucket`), and the PyTorch
reference's per-image path, in the same run. Prints wall seconds, compilations and the
ratios, and what bucket padding changes in the outputs against the reference padding (same
noise).
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from bench.common import ROOT, add_reference_args, run_reference  # noqa: E402

REALSET65 = ROOT.parent / "shared" / "data" / "realset65"

OURS = """
import json, sys, time
import jax
cache, folder, out, pad = sys.argv[1:5]
jax.config.update("jax_compilation_cache_dir", cache)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
from configs import realsr_v3
from resshift_jax import builder, sample_job
config = realsr_v3.get_config()
restorer = builder.restorer_from_config(config)
params = builder.random_params(restorer, jax.random.key(0))
image_restorer = builder.image_restorer(config, restorer, params, bs=1, chop_bs=1, pad=pad)
opts = sample_job.JobOptions(folder, out, chop_size=image_restorer.chop_size, overwrite=True)
jobs = sample_job.plan_job(opts, sf=4, needs_mask=False)
start = time.perf_counter()
summary = sample_job.run_job(image_restorer, opts, jobs, out=sys.stderr)
print(json.dumps({"seconds": time.perf_counter() - start, "images": summary.done,
                  "compilations": summary.compilations, "compile_seconds": summary.compile_seconds}))
"""


def make_folder(folder: pathlib.Path, crops: int, min_size: int, max_size: int, seed: int):
    """`crops` crops of random sizes, each from a different photograph."""
    rng = np.random.default_rng(seed)
    files = sorted(REALSET65.glob("*.png"))
    if len(files) < crops:
        sys.exit(f"{REALSET65}: need {crops} photographs, found {len(files)}")
    folder.mkdir(parents=True, exist_ok=True)
    sizes = []
    for k, path in enumerate(rng.choice(files, crops, replace=False)):
        image = np.asarray(Image.open(path).convert("RGB"))
        h, w = (int(rng.integers(min_size, min(max_size, s) + 1)) for s in image.shape[:2])
        top, left = int(rng.integers(0, image.shape[0] - h + 1)), int(rng.integers(0, image.shape[1] - w + 1))
        Image.fromarray(image[top:top + h, left:left + w]).save(folder / f"{k:02d}.png")
        sizes.append((h, w))
    return sizes


def compare(bucket: pathlib.Path, reference: pathlib.Path) -> dict:
    """How the bucket-padded outputs differ from the reference-padded ones (8-bit PNGs)."""
    diffs, psnrs = [], []
    for path in sorted(bucket.glob("*.png")):
        a = np.asarray(Image.open(path), np.float64) / 255
        b = np.asarray(Image.open(reference / path.name), np.float64) / 255
        diffs.append(np.abs(a - b))
        psnrs.append(10 * np.log10(1 / max(np.mean((a - b) ** 2), 1e-12)))
    every = np.concatenate([d.ravel() for d in diffs])
    return {"max_abs": float(every.max()), "mean_abs": float(every.mean()),
            "pixels_over_1_level": float((every > 1.5 / 255).mean()),
            "min_psnr_db": float(min(psnrs)), "mean_psnr_db": float(np.mean(psnrs))}


def run_ours(cache: str, folder: str, out: str, pad: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", OURS, cache, folder, out, pad], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"our run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def suite_rows(dry_run: bool) -> list:
    """The device suite's folder row: this bench's 12-crop run (two v3 compilations, the
    reference too) does not fit the suite's budget, so the suite points at it instead."""
    del dry_run
    return [dict(name="folder bench", status="skipped: run bench/folder_bench.py on its own "
                 "(its run does not fit the suite's time budget)")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=int, default=12)
    parser.add_argument("--min_size", type=int, default=64)
    parser.add_argument("--max_size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_bucket", action="store_true", help="skip the --pad bucket run")
    add_reference_args(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        sizes = make_folder(tmp / "in", args.crops, args.min_size, args.max_size, args.seed)
        print(f"{len(sizes)} crops, {len(set(sizes))} sizes: {sorted(sizes)}")
        rows = {"ours, cold cache": run_ours(str(tmp / "cache"), str(tmp / "in"), str(tmp / "o1"), "auto"),
                "ours, warm cache": run_ours(str(tmp / "cache"), str(tmp / "in"), str(tmp / "o2"), "auto")}
        pad_effect = {}
        if not args.no_bucket:
            rows["ours, --pad bucket, cold cache"] = run_ours(
                str(tmp / "cache_bucket"), str(tmp / "in"), str(tmp / "o4"), "bucket")
            pad_effect = compare(tmp / "o4", tmp / "o1")
        print("ours: " + json.dumps(rows), flush=True)  # kept if the reference run fails
        if args.reference:
            ref = run_reference(args.torch_python, args.reference, "folder", folder=str(tmp / "in"),
                                out=str(tmp / "o3"), threads=args.threads)
            rows[f"reference (torch {ref['torch']}, {ref['threads']} threads)"] = {
                "seconds": ref["folder_seconds"], "images": ref["images"]}
    ref_s = next((r["seconds"] for k, r in rows.items() if k.startswith("reference")), None)
    print(f"{'run':<40} {'wall s':>8} {'img/s':>7} {'compiles':>8} {'compile s':>9} {'vs ref':>7}")
    for name, r in rows.items():
        ratio = f"{ref_s / r['seconds']:.2f}x" if ref_s else "-"
        print(f"{name:<40} {r['seconds']:8.1f} {r['images'] / r['seconds']:7.3f} "
              f"{r.get('compilations', '-'):>8} {r.get('compile_seconds', 0):9.1f} {ratio:>7}")
    if pad_effect:
        print("bucket vs reference padding, same noise: " + ", ".join(
            f"{k} {v:.4g}" for k, v in pad_effect.items()))
    print(json.dumps({"rows": rows, "pad_effect": pad_effect}))


if __name__ == "__main__":
    main()
