"""float64 parity on a tiny 15-step chain made by the reference (tests/fixtures/parity64).

The runner judges the port against the reference's float64 chain within 10x the
reference's own float32 floor and reports both errors per step; codebook flips are listed
with their margins and the decode judged with them undone; a small planted formula error
that the end-to-end checks let through is caught by the teacher-forced check.
"""
import json
import pathlib
import re

import numpy as np
import pytest

from resshift_jax import diffusion, parity
from resshift_jax.parity import chain, float64, teacher
from resshift_jax.parity import flips as flips_lib
from resshift_jax.parity.compare import CHAIN_TOL, SINGLE_PASS_TOL, relative_error
from resshift_jax.parity.kinds import Context

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "parity64"
NAME = "sampler_ILSVRC2012_val_00000067"
STEPS = 15


def _entry():
    return json.loads((FIXTURES / "fixtures.json").read_text())[NAME]


def _io():
    with np.load(FIXTURES / _entry()["io"]) as data:
        return dict(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """What the CLI does with the chain entry, once: its rows, saved outputs and report
    (the set's single-pass unet and vq entries are the other parity tests' business)."""
    out = tmp_path_factory.mktemp("parity64")
    rows = parity.run_fixtures(FIXTURES, only=[NAME], save_outputs=out)
    with np.load(out / f"{NAME}.npz") as saved:
        ours = dict(saved)
    return rows, ours, parity.chain_report(FIXTURES, out)


def _closer(port, floors):
    """Which is nearer float64: the port, the reference's float32 runs, or in between."""
    return "port" if port < min(floors) else "reference" if port > max(floors) else "between"


def test_runner_judges_against_float64_within_the_floor(run):
    rows, ours, report = run
    assert parity.passed(rows)
    statuses = {r.array.split(" (")[0]: r.status for r in rows}
    assert statuses["samples vs float64"] == "pass" and statuses["samples"] == "info"
    truth = float64.load(FIXTURES, _entry())
    assert list(truth["floor_threads"]) == [1, 2]
    j = chain.judgement(FIXTURES, _entry(), ours, _io())
    by_array = {x.array: x for x in j.float64}
    samples = by_array["samples"]
    assert samples.port.shape == (STEPS,) and samples.floors.shape == (2, STEPS)
    # the chain amplifies float32 rounding: the floor grows along it
    assert samples.floors[:, -1].max() > 5 * samples.floors[:, 0].max()
    for x in j.float64:
        assert np.allclose(x.tol, 10 * np.maximum(x.floors.max(0), float64.FLOOR_MIN))
        assert x.ok, x
        for i in range(x.port.size):  # per step: port and reference errors, and the closer
            floors = " / ".join(f"{f:.3g}" for f in x.floors[:, i])
            step = i if x.port.size > 1 else "-"
            assert re.search(rf"\| {NAME} \| {x.array} \| {step} \| {x.port[i]:.3g} \| "
                             rf"{re.escape(floors)} \| [^|]+ \| [^|]+ \| "
                             rf"{_closer(x.port[i], x.floors[:, i])} \|", report), (x.array, i)
    assert "reference float32 vs float64 (threads 1, 2)" in report
    # the verdict is the stated multiple: just past it fails, just within it passes
    for factor, ok in ((1.1, False), (0.9, True)):
        worse = dict(ours, samples=ours["samples"].copy())
        scale = max(1.0, np.abs(truth["samples"][9]).max())
        worse["samples"][9] = truth["samples"][9] + factor * samples.tol[9] * scale
        judged = {x.array: x for x in float64.judge(worse, truth)}
        assert judged["samples"].ok is ok


def _margins(latent, codebook):
    """Per cell: nearest and second-nearest code and the distance to their boundary."""
    d2 = ((latent[:, None] - codebook[None]) ** 2).sum(-1)
    first, second = np.argsort(d2, 1)[:, :2].T
    a, b = codebook[first], codebook[second]
    margin = (((latent - b) ** 2).sum(-1) - ((latent - a) ** 2).sum(-1)) / (
        2 * np.linalg.norm(a - b, axis=-1))
    return first, second, margin


def _flipped(ours, cell, target):
    """`ours` with its final latent at `cell` (row, col) set to `target` (channels)."""
    samples = ours["samples"].copy()
    samples[-1, 0, :, cell[0], cell[1]] = target
    return dict(ours, samples=samples)


def _judge_codes(restorer, params, ours, truth):
    arrays = dict(ours, **chain._code_arrays(restorer, params, ours, truth["samples"][-1],
                                             truth["indices"]))
    j = chain.judgement(FIXTURES, _entry(), arrays, _io())
    return arrays, j, chain.sampler_rows(NAME, j, arrays, _io(), [], strict=True)


def test_codebook_flips_listed_with_margins_and_undone(run):
    import jax
    _, ours, _ = run
    entry, truth = _entry(), float64.load(FIXTURES, _entry())
    restorer, params = Context(FIXTURES, json.loads((FIXTURES / "fixtures.json").read_text()),
                               "float32").restorer(entry)
    codebook = np.asarray(params["vq"]["quantize_embedding"]["embedding"], np.float64)
    latent = np.moveaxis(truth["samples"][-1][0], 0, -1).reshape(-1, 3)  # scale_factor 1
    first, second, margin = _margins(latent, codebook)
    assert np.array_equal(first, truth["indices"].reshape(-1))
    small = int(np.argmin(margin))
    allowed = chain.judgement(FIXTURES, entry, ours, _io())
    allowed = allowed.flip_tol * allowed.flip_scale
    assert margin[small] < 0.8 * allowed  # the fixture has a cell this near a boundary
    # plant an explained flip: the port's latent just across that cell's boundary
    normal = codebook[second[small]] - codebook[first[small]]
    normal /= np.linalg.norm(normal)
    cell = divmod(small, 16)
    arrays, j, rows = _judge_codes(restorer, params, _flipped(
        ours, cell, latent[small] + (margin[small] + 2e-5) * normal), truth)
    assert j.flips.cells.tolist() == [[0, *cell]]
    assert (j.flips.ours[0], j.flips.ref[0]) == (second[small], first[small])
    assert j.flips.margin[0] == pytest.approx(margin[small], rel=1e-6)
    by_array = {r.array.split(" (")[0]: r for r in rows}
    assert by_array["codebook flips: 1"].status == "pass"
    assert by_array["out_unflipped vs float64"].status == "pass"
    # the flip itself changes a patch of the image far beyond the tolerance
    decode = jax.jit(lambda z: restorer.decode(params["vq"], z))
    flipped = parity.nchw(decode(parity.nhwc(arrays["samples"][-1])))
    assert relative_error(flipped, truth["out"]) > 100 * SINGLE_PASS_TOL
    # a flip far from any boundary is a failure: the port's latent moved onto another code
    far = int(np.argmax(margin))
    arrays, j, rows = _judge_codes(restorer, params, _flipped(
        ours, divmod(far, 16), codebook[second[far]]), truth)
    assert j.flips.cells.tolist() == [[0, *divmod(far, 16)]]
    assert j.flips.margin[0] > 100 * allowed
    assert [r.status for r in rows if r.array.startswith("codebook flips")] == ["FAIL"]
    table = flips_lib.table(NAME, j.flips, allowed)
    assert len(table) == 1 and table[0].endswith("| FAIL |")


EPS = 4e-5  # the planted error: the last step's x0 coefficient 1 + EPS instead of 1


def test_planted_formula_error_caught_teacher_forced_only(monkeypatch, tmp_path):
    right = diffusion.q_posterior_mean

    def wrong(s, x_start, x_t, t):
        last = (t == 0).astype(x_t.dtype).reshape((-1,) + (1,) * (x_t.ndim - 1))
        return right(s, x_start, x_t, t) + EPS * last * x_start
    monkeypatch.setattr(diffusion, "q_posterior_mean", wrong)
    rows = parity.run_fixtures(FIXTURES, only=[NAME], save_outputs=tmp_path)
    by_array = {r.array.split(" (")[0]: r for r in rows}
    # the plain end-to-end chain checks pass: float32 golden within 2e-4, float64 within
    # 10x the floor (the chain's floor at its last step is larger than the error)
    for key in ("z_y", "samples", "pred_xstart", "out"):
        assert by_array[key].rel <= CHAIN_TOL, by_array[key]
    for key in ("z_y", "samples", "pred_xstart", "out_unflipped"):
        assert by_array[f"{key} vs float64"].status == "pass", by_array[f"{key} vs float64"]
    assert by_array["samples vs float64"].rel > EPS / 2  # the error is there
    # teacher-forced, it shows at the step where it enters, and only there
    row = by_array["samples teacher-forced"]
    assert row.status == "FAIL" and row.array.endswith(f"(worst step {STEPS - 1})")
    with np.load(tmp_path / f"{NAME}.npz") as saved:
        rel, _ = teacher.step_errors(dict(saved), _io())["samples"]
    assert np.all(rel[:-1] <= SINGLE_PASS_TOL) and rel[-1] > SINGLE_PASS_TOL
    assert by_array["pred_xstart teacher-forced"].status == "pass"
    assert not parity.passed(rows)
