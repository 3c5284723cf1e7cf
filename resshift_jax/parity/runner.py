"""Run every entry of a fixture set against the PyTorch reference's numbers and report.

    python -m resshift_jax.parity tests/fixtures/parity [--save-outputs OUT] [--dtype bfloat16]

A fixture set is a folder with `fixtures.json` (see tests/fixtures/parity/README.md): each
entry has a `kind` and names its files. Every entry of a known kind is computed with the
project's own code and compared array by array with the contract's measure
max|port - ref| / max(1, max|ref|). A sampler entry is also run teacher-forced (each step
from the reference's recorded state), its final codebook flips are explained, and where it
carries the reference's float64 chain it is judged against that (parity/chain.py).
Exit status is non-zero on any failure.
"""
import argparse
import json
import pathlib
from typing import List

import numpy as np

from resshift_jax.parity import chain
from resshift_jax.parity.compare import (SCHEDULE_TOL, Row, compare, format_table, passed,
                                         relative_error)
from resshift_jax.parity.kinds import ADAPTERS, Context
from resshift_jax.parity.report import chain_report


def _schedule_rows(name, entry, ctx: Context) -> List[Row]:
    from resshift_jax.diffusion import schedule_arrays
    path = ctx.root / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fixture file missing")
    rows = []
    for config, ref in json.loads(path.read_text()).items():
        ours = schedule_arrays(**ref["params"])
        errs = [(relative_error(ours[k], ref[k]), float(np.max(np.abs(ours[k] - np.asarray(ref[k])))))
                for k in ours]
        rel, max_abs = max(errs)
        status = "pass" if rel <= SCHEDULE_TOL else "FAIL"
        rows.append(Row(f"{name}/{config}", f"{len(ours)} arrays", max_abs, rel, SCHEDULE_TOL, status))
    return rows


def run_fixtures(root, *, dtype: str = "float32", save_outputs=None, only=None) -> List[Row]:
    """Compute and compare every entry of `root/fixtures.json` (or those named in `only`;
    the others may still be named by them, as a sampler names its networks)."""
    import jax
    jax.config.update("jax_default_matmul_precision", "highest")
    root = pathlib.Path(root)
    entries = json.loads((root / "fixtures.json").read_text())
    ctx = Context(root, entries, dtype)
    strict = dtype == "float32"
    rows: List[Row] = []
    unknown = sorted(set(only or ()) - set(entries))
    if unknown:
        raise KeyError(f"{root / 'fixtures.json'}: no entries {', '.join(unknown)}")
    for name, entry in entries.items():
        kind = entry.get("kind")
        if only is not None and name not in only:
            continue
        if kind == "schedules":
            rows += _schedule_rows(name, entry, ctx)
            continue
        if kind not in ADAPTERS:
            rows.append(Row(name, "-", np.nan, np.nan, np.nan, f"unknown kind {kind!r}"))
            continue
        try:
            ours = ADAPTERS[kind](name, entry, ctx)
        except (ImportError, NotImplementedError) as e:
            rows.append(Row(name, "-", np.nan, np.nan, np.nan, f"not yet implemented ({e})"))
            continue
        if save_outputs is not None:
            out_dir = pathlib.Path(save_outputs)
            out_dir.mkdir(parents=True, exist_ok=True)
            np.savez(out_dir / f"{name}.npz", **{k: np.asarray(v) for k, v in ours.items()})
        io = ctx.io(entry)
        plain = compare(name, kind, ours, io, strict)
        if kind == "sampler":
            plain = chain.sampler_rows(name, chain.judgement(root, entry, ours, io), ours, io,
                                       plain, strict)
        rows += plain
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resshift_jax.parity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixture_dir", help="folder holding fixtures.json and its files")
    parser.add_argument("--save-outputs", metavar="OUT",
                        help="write OUT/<fixture>.npz with every array computed")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="compute dtype; bfloat16 reports what it costs (no pass/fail)")
    parser.add_argument("--report", metavar="FILE.md", help="also write the tables as Markdown")
    args = parser.parse_args(argv)
    if not (pathlib.Path(args.fixture_dir) / "fixtures.json").is_file():
        parser.error(f"{args.fixture_dir}: no fixtures.json there")
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        save_dir = args.save_outputs or scratch
        rows = run_fixtures(args.fixture_dir, dtype=args.dtype, save_outputs=save_dir)
        steps = chain_report(args.fixture_dir, save_dir)
    table = format_table(rows) + (f"\n\n{args.dtype} chains.\n\n{steps}" if steps else "")
    print(table)
    if args.report:
        pathlib.Path(args.report).write_text(table + "\n")
    ok = passed(rows)
    print(f"\n{sum(r.status == 'pass' for r in rows)} passed, "
          f"{sum(r.status not in ('pass', 'info') for r in rows)} failed")
    return 0 if ok else 1

