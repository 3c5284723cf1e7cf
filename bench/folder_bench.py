"""End to end over a folder of real photographs of many sizes: compile included.

    python bench/folder_bench.py --reference ~/ResShift --torch_python ~/torch-venv/bin/python
    python bench/folder_bench.py --crops 10 --write_folder device_data/folder  # device_prep.sh

Cuts `--crops` crops of seeded random sizes (`--min_size`..`--max_size` LQ pixels a side)
from different RealSet65 photographs, then restores the folder with the v3 architecture
(random weights) in fresh processes: ours at the defaults (`--pad auto`: the reference's
padding on a CPU, buckets on an accelerator) with an empty persistent compilation cache
(every program compiled, in parallel), ours again with that cache (compilation read back),
ours with `--pad bucket` (its own cache; skip with `--no_bucket`), and the PyTorch
reference's per-image path, in the same run. Prints wall seconds, compilations and the
ratios, and what bucket padding changes in the outputs against the reference padding (same
noise). `--write_folder DIR` only writes the crops: the device suite's `folder` section
(`suite_rows`) restores those on the GPU machine, which has no RealSet65.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from bench.common import ROOT, add_reference_args, fake_params, run_reference  # noqa: E402

REALSET65 = ROOT.parent / "shared" / "data" / "realset65"
OURS = """
import json, sys
from bench.folder_bench import restore_ours
print(json.dumps(restore_ours(**json.loads(sys.argv[1]))))
"""
SUITE_DTYPE = "float32"  # sample.py's default
DRY_CROPS = ((24, 20), (32, 28), (20, 30))  # (H, W): the dry run's folder, within tiny_test's chop


def restore_ours(cache: str, folder: str, out: str, pad: str, config: str = "realsr_v3",
                 dry_run: bool = False, weights: str = "init", dtype: str = "float32") -> dict:
    """Restore `folder` as sample.py does (batch 1, random weights: `builder.random_params`,
    or `fake_params` with no init program to compile), `cache` the persistent compilation
    cache; run in a fresh process by `run_ours`."""
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from bench.device_sections import config_of
    from resshift_jax import builder, sample_job
    conf = config_of(config, dry_run)
    restorer = builder.restorer_from_config(conf, getattr(jnp, dtype))
    params = (fake_params(restorer) if weights == "fake"
              else builder.random_params(restorer, jax.random.key(0)))
    image_restorer = builder.image_restorer(conf, restorer, params, bs=1, chop_bs=1, pad=pad)
    opts = sample_job.JobOptions(folder, out, chop_size=image_restorer.chop_size, overwrite=True)
    jobs = sample_job.plan_job(opts, sf=restorer.sf, needs_mask=False)
    start = time.perf_counter()
    summary = sample_job.run_job(image_restorer, opts, jobs, out=sys.stderr)
    return {"seconds": time.perf_counter() - start, "images": summary.done,
            "failed": len(summary.failures), "compilations": summary.compilations,
            "compile_seconds": summary.compile_seconds, "pad": image_restorer.pad}


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


def cache_entries(cache: pathlib.Path) -> int:
    """Programs in a persistent compilation cache (its top-level files, access times aside)."""
    return sum(1 for f in cache.glob("*") if f.is_file() and not f.name.endswith("-atime"))


def run_ours(**spec) -> dict:
    """`restore_ours(**spec)` in a fresh Python (its output on this one's stderr), with the
    process's wall seconds and the cache entries it wrote."""
    cache = pathlib.Path(spec["cache"])
    before = cache_entries(cache)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", OURS, json.dumps(spec)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"our folder run exited with status {proc.returncode} (its output "
                           "is above)")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]),
                process_seconds=time.perf_counter() - start,
                cache_written=cache_entries(cache) - before)


def tiny_folder(folder: pathlib.Path) -> pathlib.Path:
    """The dry run's folder: `DRY_CROPS` of seeded noise."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for k, (h, w) in enumerate(DRY_CROPS):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(folder / f"{k:02d}.png")
    return folder


def _reference_row(plan, folder: pathlib.Path, out: pathlib.Path, what: str) -> dict:
    """The reference's per-image path over `folder` on the suite's device (fp16 autocast on
    a GPU, as its inference script); a row."""
    from bench.device_sections import architecture, config_of, has_torch
    if not plan.reference:
        return dict(name="reference", status="skipped: no --reference")
    if not has_torch(plan.torch_python):
        return dict(name="reference", status="skipped: no torch",
                    note=f"{plan.torch_python} cannot import torch")
    if not (pathlib.Path(plan.reference) / "models" / "unet.py").is_file():
        raise FileNotFoundError(f"{plan.reference}: not a ResShift checkout (no models/unet.py)")
    offset = int(config_of(plan.config, plan.dry_run).sample.padding_offset)
    cmd = [plan.torch_python, str(ROOT / "bench" / "reference_side.py"), "folder",
           "--reference", plan.reference, "--folder", json.dumps(str(folder)),
           "--out", json.dumps(str(out)), "--padding_offset", str(offset), "--amp", "true",
           "--arch", json.dumps(architecture(plan))]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"reference_side.py folder exited with status {proc.returncode} "
                           "(its traceback is in the log)")
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds, images = ref["folder_seconds"], ref["images"]
    dtype = "fp16 amp" if ref["amp"] == "fp16" else "float32"
    return dict(name="reference, per image", dtype=dtype, batch=images, seconds=seconds,
                images_per_s=images / seconds, images=images, status="ok",
                note=f"torch {ref['torch']} on {ref['device']}, padded to multiples of "
                     f"{offset}; {what}")


def suite_rows(plan, emit) -> None:
    """The device suite's `folder` rows, each emitted as it finishes: `plan.folder` (a dry
    run: `tiny_folder`) restored by ours at sample.py's defaults in fresh processes, with an
    empty persistent compilation cache, then with it warm; then by the reference. `batch`
    is the folder's images; `seconds` the job's wall time, compilation included."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        folder = pathlib.Path(plan.folder) if plan.folder else tiny_folder(tmp / "in")
        files = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if not files:
            print(f"{folder}: no PNG crops")
            emit(dict(name="folder", status=f"skipped: no PNG crops in {folder}",
                      note="run `bash bench/device_prep.sh` and carry device_data "
                           "(bench/README.md)"))
            return
        sizes = sorted((Image.open(f).size[::-1] for f in files), key=lambda s: s[0] * s[1])
        what = (f"{len(sizes)} crops, {len(set(sizes))} sizes, {sizes[0][0]}x{sizes[0][1]} to "
                f"{sizes[-1][0]}x{sizes[-1][1]}")
        spec = dict(folder=str(folder), pad="auto", config=plan.config, dry_run=plan.dry_run,
                    weights="fake", dtype=SUITE_DTYPE, cache=str(tmp / "cache"))
        for cache in ("cold", "warm"):
            r = run_ours(**spec, out=str(tmp / cache))
            emit(dict(name=f"ours, {cache} cache", dtype=SUITE_DTYPE, batch=r["images"],
                      seconds=r["seconds"], images_per_s=r["images"] / r["seconds"],
                      compile_s=r["compile_seconds"], images=r["images"],
                      compilations=r["compilations"], process_s=r["process_seconds"],
                      cache_written=r["cache_written"],
                      status="ok" if r["failed"] == 0 else f"FAIL: {r['failed']} images failed",
                      note=f"--pad {r['pad']}: {r['compilations']} program"
                           f"{'s' * (r['compilations'] != 1)}, "
                           f"{r['cache_written']} cache entries written; process "
                           f"{r['process_seconds']:.0f} s; {what}"))
        emit(_reference_row(plan, folder, tmp / "reference", what))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=int, default=12)
    parser.add_argument("--min_size", type=int, default=64)
    parser.add_argument("--max_size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_bucket", action="store_true", help="skip the --pad bucket run")
    parser.add_argument("--write_folder", help="only write the crops to this folder")
    add_reference_args(parser)
    args = parser.parse_args()
    if args.write_folder:
        sizes = make_folder(pathlib.Path(args.write_folder), args.crops, args.min_size,
                            args.max_size, args.seed)
        print(f"{args.write_folder}: {len(sizes)} crops, {len(set(sizes))} sizes: {sorted(sizes)}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        sizes = make_folder(tmp / "in", args.crops, args.min_size, args.max_size, args.seed)
        print(f"{len(sizes)} crops, {len(set(sizes))} sizes: {sorted(sizes)}")
        spec = dict(folder=str(tmp / "in"), pad="auto", cache=str(tmp / "cache"))
        try:
            rows = {"ours, cold cache": run_ours(**spec, out=str(tmp / "o1")),
                    "ours, warm cache": run_ours(**spec, out=str(tmp / "o2"))}
            pad_effect = {}
            if not args.no_bucket:
                bucket = dict(spec, pad="bucket", cache=str(tmp / "cache_bucket"))
                rows["ours, --pad bucket, cold cache"] = run_ours(**bucket, out=str(tmp / "o4"))
                pad_effect = compare(tmp / "o4", tmp / "o1")
        except RuntimeError as e:
            sys.exit(str(e))
        print("ours: " + json.dumps(rows), flush=True)  # kept if the reference run fails
        if args.reference:
            ref = run_reference(args.torch_python, args.reference, "folder", folder=str(tmp / "in"),
                                out=str(tmp / "o3"), threads=args.threads, amp=True)
            name = f"reference (torch {ref['torch']} on {ref['device']}, {ref['threads']} threads)"
            rows[name] = {"seconds": ref["folder_seconds"], "images": ref["images"]}
    ref_s = next((r["seconds"] for k, r in rows.items() if k.startswith("reference")), None)
    print(f"{'run':<48} {'wall s':>8} {'img/s':>7} {'compiles':>8} {'compile s':>9} {'vs ref':>7}")
    for name, r in rows.items():
        ratio = f"{ref_s / r['seconds']:.2f}x" if ref_s else "-"
        print(f"{name:<48} {r['seconds']:8.1f} {r['images'] / r['seconds']:7.3f} "
              f"{r.get('compilations', '-'):>8} {r.get('compile_seconds', 0):9.1f} {ratio:>7}")
    if pad_effect:
        print("bucket vs reference padding, same noise: " + ", ".join(
            f"{k} {v:.4g}" for k, v in pad_effect.items()))
    print(json.dumps({"rows": rows, "pad_effect": pad_effect}))


if __name__ == "__main__":
    main()
