"""A chain judged against the reference's float64 run, within a multiple of its float32 floor.

A long chain amplifies float32 rounding: two float32 runs of the reference (1 vs 2 torch
threads) differ by as much as the port differs from either, so a float32 golden file
cannot tell a correct port from a wrong one late in the chain. A sampler entry naming a
`float64` file carries the reference's double-precision chain and, for each float32 run
of the reference, its error against it per step and per array: the floor (format:
docs/parity.md). Each array of the port is judged against float64 within FLOOR_MULTIPLE
times the largest floor of the reference's own float32 runs at that step.
"""
from typing import List, NamedTuple

import numpy as np

from resshift_jax.parity.compare import Row, relative_error

FLOOR_MULTIPLE = 10.0
FLOOR_MIN = 1e-7  # a measured floor below float32's resolution counts as this
# (port array, float64 array, floor): the decoded image is judged with its flips undone.
JUDGED = (("z_y", "z_y", "floor_z_y"), ("samples", "samples", "floor_samples"),
          ("pred_xstart", "pred_xstart", "floor_pred_xstart"),
          ("out_unflipped", "out", "floor_out_unflipped"))
SHOWN = (("out", "out", "floor_out"),)  # reported, not judged
REQUIRED = ("z_y", "samples", "pred_xstart", "out", "indices", "floor_threads", "floor_z_y",
            "floor_samples", "floor_pred_xstart", "floor_out", "floor_out_unflipped", "floor_flips")


class Judged(NamedTuple):
    array: str
    port: np.ndarray     # (S,) the port's relative error against float64, per step
    max_abs: np.ndarray  # (S,) the port's max abs difference from float64
    floors: np.ndarray   # (R, S) each float32 run of the reference, against float64
    tol: np.ndarray      # (S,) FLOOR_MULTIPLE x the largest floor
    judged: bool

    @property
    def ok(self) -> bool:
        return bool(np.all(self.port <= self.tol))


def load(root, entry) -> dict:
    """The entry's float64 file, checked for every array the judgement needs."""
    path = root / entry["float64"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fixture file missing")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"{path}: float64 file lacks {', '.join(missing)}")
    return arrays


def judge(ours: dict, truth: dict) -> List[Judged]:
    """Per array (stacks: per step), the port's error against float64 and the floor."""
    runs = len(truth["floor_threads"])
    out = []
    for spec, judged in [(s, True) for s in JUDGED] + [(s, False) for s in SHOWN]:
        key, truth_key, floor_key = spec
        port, ref = np.asarray(ours[key]), truth[truth_key]
        pairs = list(zip(port, ref)) if ref.ndim == 5 else [(port, ref)]
        errs = np.array([relative_error(a, b) for a, b in pairs])
        max_abs = np.array([np.max(np.abs(a.astype(np.float64) - b)) for a, b in pairs])
        floors = np.asarray(truth[floor_key], np.float64).reshape(runs, -1)
        tol = FLOOR_MULTIPLE * np.maximum(floors.max(0), FLOOR_MIN)
        out.append(Judged(key, errs, max_abs, floors, tol, judged))
    return out


def rows(name: str, judged: List[Judged], strict: bool) -> List[Row]:
    """One row per array: the step worst against its tolerance; shown-only arrays as info."""
    result = []
    for j in judged:
        worst = int(np.argmax(j.port / j.tol))
        label = f"{j.array} vs float64" + (f" (worst step {worst})" if j.port.size > 1 else "")
        status = ("pass" if j.ok else "FAIL") if strict and j.judged else "info"
        result.append(Row(name, label, float(j.max_abs[worst]), float(j.port[worst]),
                          float(j.tol[worst]), status))
    return result


def closer(port: float, floors: np.ndarray) -> str:
    if port < floors.min():
        return "port"
    return "reference" if port > floors.max() else "between"


def step_table(name: str, judged: List[Judged], threads) -> List[str]:
    """Markdown rows: per array and step, the port's and each reference run's error."""
    lines = []
    for j in judged:
        for i in range(j.port.size):
            ref = " / ".join(f"{f:.3g}" for f in j.floors[:, i])
            lines.append(f"| {name} | {j.array} | {i if j.port.size > 1 else '-'} | "
                         f"{j.port[i]:.3g} | {ref} | {j.port[i] / j.floors[:, i].max():.2f} | "
                         f"{j.tol[i]:.2g} | {closer(j.port[i], j.floors[:, i])} |")
    return lines


def table_header(threads) -> List[str]:
    runs = ", ".join(str(int(n)) for n in threads)
    return [f"| fixture | array | step | port vs float64 | reference float32 vs float64 "
            f"(threads {runs}) | port / reference | tol | closer |",
            "|---|---|---|---|---|---|---|---|"]
