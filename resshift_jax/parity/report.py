"""The per-step report of every sampler entry, from the outputs a run saved (no model).

Sections: the free chain against the float32 reference per step; each step teacher-forced;
against float64 (entries that carry it) next to the reference's own float32 runs; the
codebook flips of the final latent with their margins; the final images.
"""
import json
import pathlib

import numpy as np

from resshift_jax.parity import flips as flips_lib
from resshift_jax.parity import float64
from resshift_jax.parity.chain import judgement
from resshift_jax.parity.compare import SINGLE_PASS_TOL


def _psnr(a, b) -> float:
    a, b = (np.clip(np.asarray(x, np.float64) * 0.5 + 0.5, 0, 1) for x in (a, b))
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _sections(name, ref, ours, j) -> dict:
    free, tf = [], []
    for i in range(ref["samples"].shape[0]):
        ds = np.abs(ours["samples"][i] - ref["samples"][i])
        dp = np.abs(ours["pred_xstart"][i] - ref["pred_xstart"][i])
        free.append(f"| {name} | {i} | {ds.max():.3g} | {ds.mean():.3g} | {dp.max():.3g} "
                    f"| {dp.mean():.3g} |")
        (s_rel, _), (p_rel, _) = j.teacher["samples"], j.teacher["pred_xstart"]
        ok = s_rel[i] <= SINGLE_PASS_TOL and p_rel[i] <= SINGLE_PASS_TOL
        tf.append(f"| {name} | {i} | {s_rel[i]:.3g} | {p_rel[i]:.3g} | {SINGLE_PASS_TOL:.0e} "
                  f"| {'pass' if ok else 'FAIL'} |")
    d = np.abs(ours["out"] - ref["out"])
    final = f"| {name} | {d.max():.3g} | {d.mean():.3g} | {_psnr(ours['out'], ref['out']):.2f} |"
    sections = {"free": free, "teacher": tf, "float64": [], "flips": [], "notes": []}
    if j.flips is not None:
        sections["flips"] = flips_lib.table(name, j.flips, j.flip_tol * j.flip_scale)
        final += (f" {len(j.flips.cells)} | "
                  f"{_psnr(ours['out_unflipped'], ref['out']):.2f} |")
    else:
        final += " - | - |"
    sections["final"] = [final]
    if j.float64 is not None:
        sections["float64"] = float64.step_table(name, j.float64, j.threads)
        runs = ", ".join(f"{int(f)} ({int(n)} threads)" for f, n in zip(j.reference_flips, j.threads))
        sections["notes"].append(f"{name}: the reference's own float32 runs flip {runs} cells "
                                 f"against float64; the port flips {len(j.flips.cells)}.")
    return sections


HEADERS = {
    "free": ["| fixture | step | samples max | samples mean | pred_xstart max | pred_xstart mean |",
             "|---|---|---|---|---|---|"],
    "teacher": ["| fixture | step | samples rel | pred_xstart rel | tol | status |",
                "|---|---|---|---|---|---|"],
    "flips": flips_lib.TABLE_HEADER,
    "final": ["| fixture | out max abs | out mean abs | PSNR ours vs reference (dB) | flips "
              "| PSNR flips undone (dB) |", "|---|---|---|---|---|---|"],
}
TITLES = {"free": "Free chain against the float32 reference, per step",
          "teacher": "Teacher-forced: each step from the reference's recorded state",
          "float64": f"Against float64 (tolerance {float64.FLOOR_MULTIPLE:g} x the reference's "
                     "float32 floor; ratio = port / the worst reference run)",
          "flips": "Codebook flips of the final latent (margin: the reference latent's distance "
                   "to the boundary between the two codes)",
          "final": "Final images"}


def chain_report(root, save_dir) -> str:
    """The sections above for every sampler entry whose outputs are in `save_dir`."""
    root, save_dir = pathlib.Path(root), pathlib.Path(save_dir)
    entries = json.loads((root / "fixtures.json").read_text())
    collected = {k: [] for k in ("free", "teacher", "float64", "flips", "final", "notes")}
    threads = None
    for name, entry in entries.items():
        if entry.get("kind") != "sampler" or not (save_dir / f"{name}.npz").is_file():
            continue
        with np.load(root / entry["io"]) as ref_file, np.load(save_dir / f"{name}.npz") as ours_file:
            ref, ours = dict(ref_file), dict(ours_file)
        j = judgement(root, entry, ours, ref)
        threads = j.threads if j.threads is not None else threads
        for key, lines in _sections(name, ref, ours, j).items():
            collected[key] += lines
    if not collected["free"]:
        return ""
    parts = []
    for key in ("free", "teacher", "float64", "flips", "final"):
        if collected[key]:
            header = float64.table_header(threads) if key == "float64" else HEADERS[key]
            parts.append(f"{TITLES[key]}:\n\n" + "\n".join(header + collected[key]))
    if collected["notes"]:
        parts.append("\n".join(collected["notes"]))
    return "\n\n".join(parts)
