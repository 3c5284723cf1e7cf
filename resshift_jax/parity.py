"""Parity with the PyTorch reference: run every entry of a fixture set and report errors.

    python -m resshift_jax.parity tests/fixtures/parity [--save-outputs OUT] [--dtype bfloat16]

A fixture set is a folder with `fixtures.json` (see tests/fixtures/parity/README.md): each
entry has a `kind` and names its files. Every entry of a known kind is computed with the
project's own code and compared array by array with the contract's measure
max|port - ref| / max(1, max|ref|). Exit status is non-zero on any failure.
"""
import argparse
import json
import pathlib
import sys
from typing import Callable, Dict, List, NamedTuple

import numpy as np

SINGLE_PASS_TOL = 2e-5
CHAIN_TOL = 2e-4
SCHEDULE_TOL = 1e-10


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


def nchw(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x.transpose(0, 1, 4, 2, 3)


def nhwc(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.transpose(0, 1, 3, 4, 2)


class Context(NamedTuple):
    """What a kind's runner needs: the fixture folder, all entries, the compute dtype."""
    root: pathlib.Path
    entries: dict
    dtype: str

    def io(self, entry) -> dict:
        path = self.root / entry["io"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: fixture file missing")
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def network(self, name: str):
        """(module, params) of the `unet` or `vq` entry `name`, loaded from its checkpoint."""
        import jax.numpy as jnp
        from resshift_jax.convert.loading import build_model, load_params
        entry = self.entries[name]
        model = build_model(entry["kind"], entry["params"], dtype=getattr(jnp, self.dtype))
        return model, load_params(entry["kind"], self.root / entry["checkpoint"], model)


def _run_unet(name, entry, ctx: Context) -> dict:
    io = ctx.io(entry)
    model, params = ctx.network(name)
    mask = nhwc(io["mask"]) if "mask" in io else None
    import jax
    out = jax.jit(model.apply)({"params": params}, nhwc(io["x"]), io["t"], nhwc(io["lq"]), mask)
    return {"out": nchw(out)}


def _run_vq(name, entry, ctx: Context) -> dict:
    io = ctx.io(entry)
    model, params = ctx.network(name)
    import jax

    def forward(v, image):
        latent = model.apply(v, image, method="encode")
        quantized, indices = model.apply(v, latent, method="quantize")
        return {"latent": latent, "quantized": quantized, "indices": indices,
                "decoded": model.apply(v, latent, method="decode"),
                "decoded_unquantized": model.apply(v, latent, force_not_quantize=True,
                                                   method="decode")}
    out = jax.jit(forward)({"params": params}, nhwc(io["image"]))
    out = {k: (np.asarray(v) if k == "indices" else nchw(v)) for k, v in out.items()}
    out["indices"] = out["indices"].reshape(io["indices"].shape)
    return out


def _restorer(entry, ctx: Context):
    from resshift_jax import diffusion
    from resshift_jax.sampling import Restorer
    unet, unet_params = ctx.network(entry["unet"])
    vq, vq_params = ctx.network(entry["autoencoder"])
    schedule = diffusion.make_schedule(**entry["diffusion"])
    restorer = Restorer(unet=unet, vq=vq, schedule=schedule, sf=int(entry["diffusion"]["sf"]))
    return restorer, {"unet": unet_params, "vq": vq_params}


def _run_sampler(name, entry, ctx: Context) -> dict:
    from resshift_jax.sampling import make_restore_fn
    io = ctx.io(entry)
    restorer, params = _restorer(entry, ctx)
    mask = nhwc(io["mask"]) if "mask" in io else None
    chain = make_restore_fn(restorer, return_chain=True)(
        params, nhwc(io["lq"]), mask=mask,
        noises=(nhwc(io["noise_prior"]), nhwc(io["noise_steps"])))
    return {k: nchw(v) for k, v in chain.items()}


def _run_train_loss(name, entry, ctx: Context) -> dict:
    from resshift_jax.train.objective import diffusion_terms, latent_pair
    io = ctx.io(entry)
    restorer, params = _restorer(entry, ctx)
    lq = nhwc(io["lq"])
    z_start, z_y = latent_pair(restorer, params["vq"], nhwc(io["hq"]), lq)
    mask = nhwc(io["mask"]) if "mask" in io else None
    terms = diffusion_terms(restorer, params["unet"], z_start, z_y, lq, io["t"],
                            nhwc(io["noise"]), mask)
    return {"z_t": nchw(terms["z_t"]), "pred_zstart": nchw(terms["pred_zstart"]),
            "mse": np.asarray(terms["mse"])}


def _run_bicubic(name, entry, ctx: Context) -> dict:
    from resshift_jax.resize import bicubic_upsample
    io = ctx.io(entry)
    return {f"up{s}": nchw(bicubic_upsample(nhwc(io["y"]), s)) for s in entry["scales"]}


def _run_tiling(name, entry, ctx: Context) -> dict:
    from resshift_jax.tiling import run_tiling_fixture
    return run_tiling_fixture(entry, ctx.io(entry))


def _run_degradation(name, entry, ctx: Context) -> dict:
    from resshift_jax.data.parity_degradation import run_degradation_fixture
    return run_degradation_fixture(entry, ctx.io(entry))


RUNNERS: Dict[str, Callable] = {
    "unet": _run_unet, "vq": _run_vq, "bicubic": _run_bicubic, "sampler": _run_sampler,
    "train_loss": _run_train_loss, "tiling": _run_tiling, "degradation": _run_degradation,
}
CHAIN_KINDS = ("sampler", "train_loss")


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


def compare(name: str, kind: str, ours: dict, ref: dict, strict: bool) -> List[Row]:
    """Rows for every array the reference io holds that the port computed."""
    tol = CHAIN_TOL if kind in CHAIN_KINDS else SINGLE_PASS_TOL
    rows = []
    for key, value in ours.items():
        if key not in ref or key in ("noise_prior", "noise_steps"):
            continue
        value = np.asarray(value)
        if value.shape != ref[key].shape:
            rows.append(Row(name, key, np.inf, np.inf, tol, f"FAIL (shape {value.shape} vs {ref[key].shape})"))
            continue
        exact = np.issubdtype(ref[key].dtype, np.integer)
        max_abs = float(np.max(np.abs(value.astype(np.float64) - ref[key]))) if value.size else 0.0
        rel = relative_error(value, ref[key])
        ok = max_abs == 0 if exact else rel <= tol
        status = "pass" if ok else "FAIL"
        rows.append(Row(name, key, max_abs, rel, 0.0 if exact else tol,
                        status if strict else "info"))
    return rows


def run_fixtures(root, *, dtype: str = "float32", save_outputs=None) -> List[Row]:
    """Compute and compare every entry of `root/fixtures.json`."""
    import jax
    jax.config.update("jax_default_matmul_precision", "highest")
    root = pathlib.Path(root)
    entries = json.loads((root / "fixtures.json").read_text())
    ctx = Context(root, entries, dtype)
    strict = dtype == "float32"
    rows: List[Row] = []
    for name, entry in entries.items():
        kind = entry.get("kind")
        if kind == "schedules":
            rows += _schedule_rows(name, entry, ctx)
            continue
        if kind not in RUNNERS:
            rows.append(Row(name, "-", np.nan, np.nan, np.nan, f"unknown kind {kind!r}"))
            continue
        try:
            ours = RUNNERS[kind](name, entry, ctx)
        except (ImportError, NotImplementedError) as e:
            rows.append(Row(name, "-", np.nan, np.nan, np.nan, f"not yet implemented ({e})"))
            continue
        if save_outputs is not None:
            out_dir = pathlib.Path(save_outputs)
            out_dir.mkdir(parents=True, exist_ok=True)
            np.savez(out_dir / f"{name}.npz", **{k: np.asarray(v) for k, v in ours.items()})
        rows += compare(name, kind, ours, ctx.io(entry), strict)
    return rows


def format_table(rows: List[Row]) -> str:
    """A Markdown table: fixture, array, max abs error, relative error, tolerance, status."""
    lines = ["| fixture | array | max abs err | rel err | tol | status |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.fixture} | {r.array} | {r.max_abs:.3g} | {r.rel:.3g} | {r.tol:.0e} "
                     f"| {r.status} |")
    return "\n".join(lines)


def chain_report(root, save_dir) -> str:
    """Per image and per step: max / mean |ours - ref| of the latents, and the final PSNR."""
    root, save_dir = pathlib.Path(root), pathlib.Path(save_dir)
    entries = json.loads((root / "fixtures.json").read_text())
    lines = ["| fixture | step | samples max | samples mean | pred_xstart max | pred_xstart mean |",
             "|---|---|---|---|---|---|"]
    finals = ["| fixture | out max abs | out mean abs | PSNR ours vs reference (dB) |",
              "|---|---|---|---|"]
    for name, entry in entries.items():
        if entry.get("kind") != "sampler" or not (save_dir / f"{name}.npz").is_file():
            continue
        with np.load(root / entry["io"]) as ref_file, np.load(save_dir / f"{name}.npz") as ours_file:
            ref, ours = dict(ref_file), dict(ours_file)
        for i in range(ref["samples"].shape[0]):
            ds = np.abs(ours["samples"][i] - ref["samples"][i])
            dp = np.abs(ours["pred_xstart"][i] - ref["pred_xstart"][i])
            lines.append(f"| {name} | {i} | {ds.max():.3g} | {ds.mean():.3g} | {dp.max():.3g} "
                         f"| {dp.mean():.3g} |")
        a = np.clip(ours["out"] * 0.5 + 0.5, 0, 1)
        b = np.clip(ref["out"] * 0.5 + 0.5, 0, 1)
        mse = float(np.mean((a - b) ** 2))
        psnr = float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
        d = np.abs(ours["out"] - ref["out"])
        finals.append(f"| {name} | {d.max():.3g} | {d.mean():.3g} | {psnr:.2f} |")
    if len(lines) == 2:
        return ""
    return "\n".join(lines) + "\n\n" + "\n".join(finals)


def passed(rows: List[Row]) -> bool:
    return bool(rows) and all(r.status in ("pass", "info") for r in rows)


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
    table = format_table(rows) + (f"\n\nPer step ({args.dtype}):\n\n{steps}" if steps else "")
    print(table)
    if args.report:
        pathlib.Path(args.report).write_text(table + "\n")
    ok = passed(rows)
    print(f"\n{sum(r.status == 'pass' for r in rows)} passed, "
          f"{sum(r.status not in ('pass', 'info') for r in rows)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
