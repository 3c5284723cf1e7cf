"""The contract's error measure, tolerances, and the rows a fixture run reports."""
from typing import List, NamedTuple

import numpy as np

SINGLE_PASS_TOL = 2e-5
CHAIN_TOL = 2e-4
SCHEDULE_TOL = 1e-10
CHAIN_KINDS = ("sampler", "train_loss")


def relative_error(port, ref) -> float:
    """max|port - ref| / max(1, max|ref|), the contract's error measure."""
    port = np.asarray(port, np.float64)
    ref = np.asarray(ref, np.float64)
    if port.shape != ref.shape:
        raise ValueError(f"shape mismatch: port {port.shape} vs reference {ref.shape}")
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(port - ref)) / max(1.0, float(np.max(np.abs(ref)))))


class Row(NamedTuple):
    fixture: str
    array: str
    max_abs: float
    rel: float
    tol: float
    status: str  # "pass", "FAIL", "not yet implemented", "info"


def compare(name: str, kind: str, ours: dict, ref: dict, strict: bool) -> List[Row]:
    """Rows for every array the reference io holds that the port computed."""
    tol = CHAIN_TOL if kind in CHAIN_KINDS else SINGLE_PASS_TOL
    rows = []
    for key, value in ours.items():
        if key not in ref or key in ("noise_prior", "noise_steps"):
            continue
        value = np.asarray(value)
        if value.shape != ref[key].shape:
            rows.append(Row(name, key, np.inf, np.inf, tol,
                            f"FAIL (shape {value.shape} vs {ref[key].shape})"))
            continue
        exact = np.issubdtype(ref[key].dtype, np.integer)
        max_abs = float(np.max(np.abs(value.astype(np.float64) - ref[key]))) if value.size else 0.0
        rel = relative_error(value, ref[key])
        ok = max_abs == 0 if exact else rel <= tol
        status = "pass" if ok else "FAIL"
        rows.append(Row(name, key, max_abs, rel, 0.0 if exact else tol,
                        status if strict else "info"))
    return rows


def format_table(rows: List[Row]) -> str:
    """A Markdown table: fixture, array, max abs error, relative error, tolerance, status."""
    lines = ["| fixture | array | max abs err | rel err | tol | status |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.fixture} | {r.array} | {r.max_abs:.3g} | {r.rel:.3g} | {r.tol:.0e} "
                     f"| {r.status} |")
    return "\n".join(lines)


def passed(rows: List[Row]) -> bool:
    return bool(rows) and all(r.status in ("pass", "info") for r in rows)
