"""The sampler kind in full: free chain, teacher-forced steps, codebook flips, float64 truth.

`sampler_arrays` computes with the project's own code everything the checks need (saved
with --save-outputs, so the report needs no model); `judgement` measures it against the
fixture; `sampler_rows` adds its rows to the plain float32 comparison and says which of
those the stronger checks replace: against float64 (when the entry has it) every chain
array, and the decoded image when its flips are all explained.
"""
from typing import List, NamedTuple, Optional

import numpy as np

from resshift_jax.parity import float64, teacher
from resshift_jax.parity.compare import CHAIN_TOL, SINGLE_PASS_TOL, Row, relative_error
from resshift_jax.parity.flips import Flips, find_flips, undo_flips
from resshift_jax.parity.layout import nchw, nhwc


def _channels_last(x) -> np.ndarray:
    return np.moveaxis(np.asarray(x), 1, -1)


def _code_arrays(restorer, params, ours: dict, ref_latent, ref_indices) -> dict:
    """The final latent's codes, their flips against the reference's, and the decode with
    the flips undone. `ref_latent` NCHW (any float dtype); `ref_indices` None: quantize it."""
    import jax
    vq, v = restorer.vq, {"params": params["vq"]}
    scale = restorer.schedule.scale_factor
    quantize = jax.jit(lambda z: vq.apply(v, z, method="quantize")[1])
    codebook = np.asarray(params["vq"]["quantize_embedding"]["embedding"])
    ours_latent = nhwc(ours["samples"][-1]) / scale
    ref_latent = _channels_last(ref_latent).astype(np.float64) / scale
    ours_idx = np.asarray(quantize(ours_latent))
    if ref_indices is None:
        ref_indices = np.asarray(quantize(ref_latent.astype(np.float32)))
    flips = find_flips(ours_idx, ref_indices, ours_latent, ref_latent, codebook)
    merged = codebook[undo_flips(ours_idx, ref_indices)]
    decode = jax.jit(lambda z: vq.apply(v, z, force_not_quantize=True, method="decode"))
    return {"indices": ours_idx, "ref_indices": np.asarray(ref_indices),
            "out_unflipped": nchw(decode(merged.astype(np.float32))), **flips.to_arrays()}


def sampler_arrays(name, entry, ctx) -> dict:
    """The free chain with the recorded noises, the teacher-forced steps, the final codes."""
    from resshift_jax.sampling import make_restore_fn
    io = ctx.io(entry)
    restorer, params = ctx.restorer(entry)
    mask = nhwc(io["mask"]) if "mask" in io else None
    chain = make_restore_fn(restorer, return_chain=True)(
        params, nhwc(io["lq"]), mask=mask,
        noises=(nhwc(io["noise_prior"]), nhwc(io["noise_steps"])))
    ours = {k: nchw(v) for k, v in chain.items()}
    ours.update(teacher.teacher_forced(restorer, params, io))
    if restorer.vq is not None:
        truth = float64.load(ctx.root, entry) if "float64" in entry else None
        ref_latent = (truth or io)["samples"][-1]
        ours.update(_code_arrays(restorer, params, ours, ref_latent,
                                 truth["indices"] if truth else None))
    return ours


class Judgement(NamedTuple):
    teacher: dict                      # array -> (relative error, max abs) per step
    float64: Optional[list]            # [float64.Judged] when the entry has a float64 file
    threads: Optional[np.ndarray]      # the reference's float32 runs' thread counts
    flips: Optional[Flips]             # None in pixel space (no codebook)
    flip_tol: float                    # a flip's margin allowed, in the contract's measure
    flip_scale: float                  # max(1, max|reference final latent|) / scale_factor
    reference_flips: Optional[np.ndarray]  # each float32 reference run's flips vs float64


def judgement(root, entry, ours: dict, io: dict) -> Judgement:
    truth = float64.load(root, entry) if "float64" in entry else None
    judged = float64.judge(ours, truth) if truth is not None else None
    final = (truth or io)["samples"][-1]
    scale = float(entry["diffusion"].get("scale_factor") or 1.0)
    flips = Flips.from_arrays(ours) if "flip_cells" in ours else None
    # a flip's margin is allowed what the final latent is allowed
    flip_tol = next(x.tol[-1] for x in judged if x.array == "samples") if judged else CHAIN_TOL
    return Judgement(teacher.step_errors(ours, io), judged,
                     truth["floor_threads"] if truth is not None else None, flips,
                     float(flip_tol), max(1.0, float(np.max(np.abs(final)))) / scale,
                     truth["floor_flips"] if truth is not None else None)


def _status(ok: bool, strict: bool) -> str:
    return ("pass" if ok else "FAIL") if strict else "info"


def sampler_rows(name: str, j: Judgement, ours: dict, io: dict, plain: List[Row],
                 strict: bool) -> List[Row]:
    """The plain float32 rows (those the checks replace as info) and the checks' rows."""
    rows = []
    for k, (rel, max_abs) in j.teacher.items():
        worst = int(np.argmax(rel))
        rows.append(Row(name, f"{k} teacher-forced (worst step {worst})", float(max_abs[worst]),
                        float(rel[worst]), SINGLE_PASS_TOL,
                        _status(bool(np.all(rel <= SINGLE_PASS_TOL)), strict)))
    replaced = set()
    if j.flips is not None:
        margins = np.abs(j.flips.margin)
        worst = float(margins.max()) if margins.size else 0.0
        explained = bool(np.all(margins <= j.flip_tol * j.flip_scale))
        rows.append(Row(name, f"codebook flips: {len(margins)}", worst, worst / j.flip_scale,
                        j.flip_tol, _status(explained, strict)))
        if j.float64 is None:
            rel = relative_error(ours["out_unflipped"], io["out"])
            max_abs = float(np.max(np.abs(ours["out_unflipped"] - io["out"])))
            rows.append(Row(name, "out flips undone", max_abs, rel, SINGLE_PASS_TOL,
                            _status(rel <= SINGLE_PASS_TOL, strict)))
            if explained and len(margins):
                replaced.add("out")
    if j.float64 is not None:
        rows += float64.rows(name, j.float64, strict)
        replaced |= {"z_y", "samples", "pred_xstart", "out"}
    plain = [r._replace(status="info") if r.array in replaced else r for r in plain]
    return plain + rows
