"""One prepared device run: parity, chain, tile, training, the reference, SinSR, metrics.

    python -m bench.device_suite [--reference reference] [--out DIR] [--dry_run]
        [--sections parity,chain,...] [--budgets chain=200,...] [--budget_s 470]

Sections (bench/device_sections.py), each in its own process with its own time budget,
so one that fails or runs out of time leaves an error row and the others still run:
`parity` (the fixtures at float32, highest precision: pass/fail), `chain` (v3, 64 -> 256,
batch 1/8/64, float32 and bfloat16), `tile` (512 LQ -> 2048 x 2048), `train` (bfloat16,
per-device batch 16 and 64), `reference` (the PyTorch reference from the checkout at
`--reference`, fp16 AMP, same device), `onestep` (SinSR's student), `folder` (the crops
in `--folder`, written by bench/device_prep.sh, end to end: ours with a cold then a warm
compilation cache, then the reference; bench/folder_bench.py), `eval` (the evaluate
metrics at 256 x 256, batch 32: images/s per metric; bench/eval_bench.py). FLOPs are XLA's cost
analysis; MFU is against `--peak_tflops` (790: the bf16 dense rate measured on the H200),
for the float32 rows too. Prints one table and writes DIR/device_suite.{md,json} and the
sections' output to DIR/device_suite.log; DIR is --out, else $OUT, else ./device_out.
`--dry_run`: the same sections at the tiny test sizes on any machine (CI runs it).
`--preflight`: the GPU run's own programs (its sizes, its batches, bf16, LPIPS-VGG) lowered
for CUDA on this machine, none compiled or run: what only the GPU's sizes or platform would
reach fails here, and each row gives its largest array and the FLOPs per image.
`--cross_compile [TARGET]`: the preflight's programs compiled by XLA's GPU compiler for an
H200 (or TARGET, a GPU description) without one, none run; each row gives the bytes the
GPU would hold and whether they fit (bench/cross_compile.py; needs JAX's CUDA plugin).
Launching it on the H200: bench/README.md.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench import cross_compile, device_sections  # noqa: E402  (jax-free at import)

# seconds per section on the GPU; they sum to the default --budget_s (8 minutes less margin)
BUDGETS = {"parity": 70, "chain": 115, "tile": 40, "train": 80, "reference": 40,
           "onestep": 30, "folder": 70, "eval": 25}
DRY_BUDGET = 300  # a loaded 2-core CI machine
CROSS_BUDGET = 3600  # XLA's GPU compiler on 2 CPU cores: minutes per training step
DRY_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
PEAK_TFLOPS = 790.0
COLUMNS = (("section", "section", "{}"), ("name", "row", "{}"), ("dtype", "dtype", "{}"),
           ("batch", "batch", "{}"), ("seconds", "ms/batch", "{:.5g}", 1e3),
           ("images_per_s", "img/s", "{:.4g}"), ("tflops", "TFLOP/s", "{:.4g}"),
           ("mfu", "MFU", "{:.1%}"), ("program_gib", "program GiB", "{:.3g}"),
           ("peak_gib", "peak GiB", "{:.3g}"), ("compile_s", "compile s", "{:.3g}"),
           ("status", "status", "{}"), ("note", "note", "{}"))


def plan_from(args) -> device_sections.Plan:
    base = device_sections.DRY if args.dry_run else device_sections.GPU
    return device_sections.Plan(**base, peak_tflops=args.peak_tflops,
                                lower_for="cuda" if args.preflight else None,
                                target=args.cross_compile,
                                reference=args.reference, torch_python=args.torch_python,
                                folder=args.folder or (None if args.dry_run else
                                                       str(device_sections.DEVICE_FOLDER)))


def worker(args) -> int:
    """Run one section, appending its rows (JSON lines) to `args.rows` as they complete."""
    with open(args.rows, "a") as rows:
        def emit(row):
            rows.write(json.dumps(row) + "\n")
            rows.flush()
        try:
            device_sections.run_section(args.worker, plan_from(args), emit)
        except Exception as e:  # noqa: BLE001  (the error becomes the section's row)
            traceback.print_exc()
            emit(dict(section=args.worker, name="(section)", status="error",
                      note=f"{type(e).__name__}: {e}"[:300]))
            return 1
    return 0


def run_worker(name: str, args, timeout: float) -> tuple:
    """(rows, meta, flops, output) of one section run in a child process within `timeout`
    seconds."""
    out = pathlib.Path(args.out)
    rows_file, log_file = out / f".{name}.rows", out / f".{name}.log"
    rows_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench.device_suite", "--worker", name, "--rows", str(rows_file),
           "--peak_tflops", str(args.peak_tflops), "--torch_python", args.torch_python]
    cmd += ["--dry_run"] if args.dry_run else []
    cmd += ["--preflight"] if args.preflight else []
    cmd += ["--cross_compile", args.cross_compile] if args.cross_compile else []
    cmd += ["--reference", args.reference] if args.reference else []
    cmd += ["--folder", args.folder] if args.folder else []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.dry_run or args.preflight and not args.cross_compile:  # its speed does not matter
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {DRY_XLA_FLAGS}".strip()
    start = time.perf_counter()
    with open(log_file, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    elapsed = time.perf_counter() - start
    records = [json.loads(line) for line in rows_file.read_text().splitlines()] \
        if rows_file.is_file() else []
    output = f"===== {name} (budget {timeout:.0f} s, {elapsed:.0f} s)\n" + log_file.read_text()
    rows_file.unlink(missing_ok=True)
    log_file.unlink()
    meta = {k: v for r in records if "meta" in r for k, v in r["meta"].items()}
    flops = [r["flops"] for r in records if "flops" in r]
    rows = [r for r in records if "meta" not in r and "flops" not in r]
    if rc is None:
        rows.append(dict(section=name, name="(section)", status=f"timeout after {elapsed:.0f} s",
                         note="stopped; the section's rows above finished in time"))
    elif rc and not any(r.get("status") == "error" for r in rows):
        rows.append(dict(section=name, name="(section)", status=f"crashed (exit {rc})",
                         note="see device_suite.log"))
    elif not rows:
        rows.append(dict(section=name, name="(section)", status="error", note="no rows"))
    print(f"[device_suite] {name}: {len(rows)} rows in {elapsed:.0f} s", flush=True)
    return rows, meta, flops, output


def add_rates(rows, flops, peak_tflops) -> None:
    """TFLOP/s and MFU of every timed row of a section with FLOPs per image."""
    for record in flops:
        if not record.get("per_image"):
            continue
        for row in rows:
            if row.get("section") == record["section"] and row.get("seconds") and row.get("batch"):
                row["tflops"] = record["per_image"] * row["batch"] / row["seconds"] / 1e12
                row["mfu"] = row["tflops"] / peak_tflops


def run_sections(sections, args, limits) -> tuple:
    """{section: (rows, meta, flops, output)}, `args.jobs` at a time, within `args.budget_s`."""
    start = time.perf_counter()

    def one(name):
        left = args.budget_s - (time.perf_counter() - start)
        if left < 5:
            return [dict(section=name, name="(section)", status="skipped: suite time spent")], {}, [], ""
        return run_worker(name, args, min(limits[name], left))
    if args.jobs == 1:
        return {name: one(name) for name in sections}
    from concurrent.futures import ThreadPoolExecutor
    order = sorted(sections, key=lambda n: -limits[n] - 1000 * (n == "train"))  # longest first
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(one, name) for name in order}
    return {name: futures[name].result() for name in sections}


def _cell(row, key, fmt, scale=None):
    value = row.get(key)
    if value is None or value == "":
        return "-"
    return fmt.format(value * scale if scale and isinstance(value, (int, float)) else value)


def markdown(rows) -> str:
    lines = ["| " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, c[0], c[2], *c[3:]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _find(rows, section, dtype=None, batch=None, largest=False):
    found = [r for r in rows if r.get("section") == section and r.get("seconds")
             and (dtype is None or r.get("dtype") == dtype)
             and (batch is None or r.get("batch") == batch)]
    if largest:
        found = sorted(found, key=lambda r: r.get("batch") or 0)[-1:]
    return found[0] if found else None


def ratios(rows) -> list:
    """JAX bfloat16 against the reference, and SinSR's student against the chain, at the
    same batch: images/s ratios; the folder's wall seconds, the reference's over ours."""
    out = []
    for ref in (r for r in rows if r.get("section") == "reference" and r.get("seconds")):
        kind = ref["name"].split()[0]
        ours = _find(rows, "chain" if kind == "chain" else "train", "bfloat16", ref["batch"])
        text = (f"{ref['seconds'] / ours['seconds']:.2f}x" if ours
                else f"no JAX bfloat16 {kind} row at batch {ref['batch']}")
        out.append(dict(what=f"{kind} x{ref['batch']}: JAX bf16 / reference {ref['dtype']} "
                             "images/s", value=text))
    ref_folder = next((r for r in rows if r.get("section") == "folder" and r.get("seconds")
                       and r["name"].startswith("reference")), None)
    for ours in (r for r in rows if ref_folder and r.get("section") == "folder"
                 and r.get("seconds") and r["name"].startswith("ours")):
        out.append(dict(what=f"folder, {ours['name']}: the reference's wall s / ours "
                             "(end to end, compilation included)",
                        value=f"{ref_folder['seconds'] / ours['seconds']:.2f}x"))
    for student in (r for r in rows if r.get("section") == "onestep" and r.get("seconds")):
        chain = _find(rows, "chain", "bfloat16", student["batch"])
        if chain:
            out.append(dict(what=f"SinSR student x{student['batch']}: images/s over the 4-step "
                                 "chain's (bf16)", value=f"{chain['seconds'] / student['seconds']:.2f}x"))
    return out


def targets(rows, peak) -> list:
    """The issue's targets, read off the rows (miss or met, or absent)."""
    def check(what, row, key, goal, fmt, higher=True):
        value = None if row is None else row.get(key)
        if value is None:
            return dict(what=what, value="no row", status="-")
        met = value >= goal if higher else value <= goal
        return dict(what=what, value=fmt.format(value), status="met" if met else "missed")
    big = _find(rows, "chain", "bfloat16", largest=True)
    one = _find(rows, "chain", "bfloat16", 1)
    trains = [r for r in rows if r.get("section") == "train" and r.get("mfu") is not None]
    best = max(trains, key=lambda r: r["mfu"]) if trains else None
    ref_train = next((r for r in rows if r.get("section") == "reference"
                      and r.get("name", "").startswith("train") and r.get("seconds")), None)
    ours = ref_train and _find(rows, "train", "bfloat16", ref_train["batch"])
    speedup = {"ratio": ref_train["seconds"] / ours["seconds"]} if ours else None
    return [check(f"chain bf16 MFU >= 40% of {peak:g} (batch {big and big['batch']})", big,
                  "mfu", 0.40, "{:.1%}"),
            check("chain bf16 batch-1 latency <= 25 ms", one and {"ms": one["seconds"] * 1e3},
                  "ms", 25.0, "{:.1f} ms", higher=False),
            check("training >= 1.5x the reference's images/s", speedup, "ratio", 1.5, "{:.2f}x"),
            check("training MFU >= 35%", best, "mfu", 0.35, "{:.1%}")]


def asks(flops, peak) -> list:
    """The targets as rates, from FLOPs per image (a preflight's, before any timing)."""
    per_image = {f["section"]: f["per_image"] for f in flops if f.get("per_image")}
    out = []
    if "chain" in per_image:
        out.append(f"chain bf16 at 40% of {peak:g} TFLOP/s: "
                   f"{per_image['chain'] / (0.40 * peak * 1e12) * 1e3:.2f} ms per image")
    if "train" in per_image:
        out.append(f"training at 35% MFU: {0.35 * peak * 1e12 / per_image['train']:.0f} images/s")
    return out or ["no FLOPs counted"]


def report(rows, meta, flops, args, elapsed) -> tuple:
    """(markdown, json-able dict) of the run."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"{platform.node()}: {meta.get('backend', '?')} {meta.get('device', '?')} "
               f"x{meta.get('devices', '?')}, jax {meta.get('jax', '?')}"
               + (f", torch {meta['torch']} on {meta.get('torch_device')}" if "torch" in meta else ""))
    extra = {"ratios": ratios(rows), "targets": targets(rows, args.peak_tflops)}
    kind = (" (dry run)" if args.dry_run else
            f" (cross-compiled for {meta.get('target', 'the GPU')} on this machine)"
            if args.cross_compile else " (preflight: lowered for cuda)" if args.preflight else "")
    rates = ("Compiled for the GPU, not run: per row, the bytes it would hold (`program GiB`: "
             "arguments + outputs + temporaries, by XLA's GPU buffer assignment, before "
             "autotuning) against the share of its memory the GPU run gives JAX, and the "
             "compile seconds on this machine's CPU." if args.cross_compile
             else "Nothing compiled or run: per row, the largest array the program holds."
             if args.preflight else f"MFU: XLA-counted FLOPs / {args.peak_tflops:g} TFLOP/s (the "
             "bf16 dense peak; float32 rows, at JAX's default matmul precision, against the same "
             "peak).")
    md = [f"# device suite{kind}, {when}", "", f"{machine}; {elapsed:.0f} s in all. {rates}", "",
          "FLOPs per image: " + ("; ".join(
              f"{f['section']} {f['per_image'] / 1e12:.4g} TFLOP ({f['how']})" if f["per_image"]
              else f"{f['section']} none ({f['how']}: no XLA cost analysis)" for f in flops)
              or "none counted") + ".", "",
          markdown(rows), "", "| ratio | value |", "|---|---|"]
    md += [f"| {r['what']} | {r['value']} |" for r in extra["ratios"]] or ["| (no reference rows) | - |"]
    md += ["", "| target | value | status |", "|---|---|---|"]
    md += [f"| {t['what']} | {t['value']} | {t['status']} |" for t in extra["targets"]]
    if args.preflight:
        extra["asks"] = asks(flops, args.peak_tflops)
        md = md[:md.index("| ratio | value |")] + ["What the targets ask at these FLOPs:", ""] + [
            f"- {a}" for a in extra["asks"]]
    data = dict(date=when, machine=machine, meta=meta, dry_run=args.dry_run,
                preflight=args.preflight, cross_compile=args.cross_compile,
                peak_tflops=args.peak_tflops, seconds=elapsed, flops=flops, rows=rows, **extra)
    return "\n".join(md) + "\n", data


def budgets(args) -> dict:
    mode = CROSS_BUDGET if args.cross_compile else DRY_BUDGET if args.dry_run or args.preflight \
        else None
    table = {k: mode or v for k, v in BUDGETS.items()}
    for item in filter(None, (args.budgets or "").split(",")):
        name, _, seconds = item.partition("=")
        if name not in table or not seconds:
            sys.exit(f"--budgets: expected section=seconds with a section of {sorted(table)}, "
                     f"got {item!r}")
        table[name] = float(seconds)
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry_run", action="store_true", help="tiny sizes, any machine")
    parser.add_argument("--preflight", action="store_true",
                        help="the GPU sizes' programs lowered for cuda here; none run")
    parser.add_argument("--cross_compile", nargs="?", const=str(cross_compile.H200_TARGET),
                        metavar="TARGET", help="the preflight's programs compiled for the GPU "
                        "TARGET describes (default: the H200) without one; none run")
    parser.add_argument("--out", help="output folder (default: $OUT, else ./device_out)")
    parser.add_argument("--reference", help="a checkout of zsyOAOA/ResShift to time as well")
    parser.add_argument("--torch_python", default=sys.executable,
                        help="a Python with torch for the reference (default: this one)")
    parser.add_argument("--folder", help="the folder section's PNG crops (default: "
                        "device_data/folder, from bench/device_prep.sh; a dry run makes its own)")
    parser.add_argument("--sections", help="comma-separated (default: all; a preflight's: "
                        + ",".join(device_sections.LOWERED) + ")")
    parser.add_argument("--budgets", help="per-section seconds, e.g. chain=200,tile=60")
    parser.add_argument("--budget_s", type=float,
                        help="the whole run's seconds (default: the sections' budgets summed, "
                             f"{sum(BUDGETS.values())} on the GPU); a section gets at most what is left")
    parser.add_argument("--peak_tflops", type=float, default=PEAK_TFLOPS)
    parser.add_argument("--jobs", type=int, default=1,
                        help="sections run at once (timings need 1; a dry run may use more)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.cross_compile:
        args.preflight = True
        args.cross_compile = str(pathlib.Path(args.cross_compile).resolve())
    if args.dry_run and args.preflight:
        parser.error("--dry_run or --preflight (--cross_compile), not both")
    sections = (args.sections or ",".join(device_sections.LOWERED if args.preflight
                                          else device_sections.SECTIONS)).split(",")
    unknown = sorted(set(sections) - set(device_sections.SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {list(device_sections.SECTIONS)}")
    if args.reference:
        args.reference = str(pathlib.Path(args.reference).resolve())
    if args.folder:
        args.folder = str(pathlib.Path(args.folder).resolve())
    out = pathlib.Path(args.out or os.environ.get("OUT") or "device_out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.out = str(out)
    limits = budgets(args)
    args.budget_s = args.budget_s or sum(limits[name] for name in sections)
    start = time.perf_counter()
    results = run_sections(sections, args, limits)
    rows, meta, flops = [], {}, []
    for section_rows, section_meta, section_flops, _ in results.values():
        rows += section_rows
        meta = {**section_meta, **meta}
        flops += section_flops
    add_rates(rows, flops, args.peak_tflops)
    (out / "device_suite.log").write_text("\n".join(r[3] for r in results.values()))
    md, data = report(rows, meta, flops, args, time.perf_counter() - start)
    (out / "device_suite.md").write_text(md)
    (out / "device_suite.json").write_text(json.dumps(data, indent=1) + "\n")
    print(md)
    print(f"[device_suite] wrote {out / 'device_suite.md'}, .json and .log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
