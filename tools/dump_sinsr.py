"""Dump SinSR's numbers (deterministic chain, one-step student, distillation losses) as fixtures.

Run in YOUR PyTorch environment (torch, numpy, omegaconf, einops, timm) with YOUR checkout of
wyf0912/SinSR; nothing of SinSR is copied into resshift-jax:

    python tools/dump_sinsr.py --sinsr ~/SinSR --parity tests/fixtures/parity -o tests/fixtures/sinsr
    python -m pytest -q tests/test_sinsr_parity.py

The networks are ResShift parity fixtures (random weights; `--unet`, `--vq`: entries of
PARITY/fixtures.json) loaded into SinSR's own classes with SinSR's own loader. The teacher is
that UNet; the student is the teacher with a few tensors redrawn (`student_overrides.npz`), so
the fixture tells the two apart. The diffusion is SinSR's configs/SinSR.yaml with `--steps`
(its main_distill.py flag). Written to OUT (format below):

- `fixtures.json`: the architectures and checkpoints (paths relative to OUT), the diffusion
  params, the distillation flags and SinSR's float64 schedule arrays.
- `ddim_io.npz`: `lq`, `z_y`, `noise_prior`; the teacher's `ddim_sample_loop_progressive`
  from x_T = prior_sample(z_y, noise_prior): every step's `samples` and `pred_xstart`, and
  `out` = decode(samples[-1]); the student's one step (`p_sample_loop(one_step=True)`, as
  SinSR's inference.py --one_step): `onestep_pred` (latent) and `onestep_out` (decoded).
- `distill_io.npz`: `hq`, `lq`, `noise`; `training_losses_distill` at t = T-1 (as its
  trainer) with learn_xT and finetune_use_gt: per-example `loss`, `mse`, `mse_xT`, `mse_gt`,
  `z_t`, `pred_zstart`; the teacher's x0 `z0_teacher`; and `grad:NAME`, the gradient of the
  batch-mean loss for each overridden student tensor (torch layout).

Arrays are NCHW float32. Where torchvision cannot load (a CPU torch next to a CUDA
torchvision wheel), it is replaced by an inert stand-in: SinSR imports its `save_image` for
logging only and timm names it at import; neither is called here.
"""
import argparse
import copy
import importlib.abc
import importlib.machinery
import json
import os
import pathlib
import sys
import types

OVERRIDES = ("input_blocks.0.0.weight", "input_blocks.0.0.bias", "out.2.weight", "out.2.bias")


def fail(message: str):
    sys.exit(f"dump_sinsr: {message}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sinsr", required=True, help="your checkout of wyf0912/SinSR")
    p.add_argument("--parity", required=True, help="a ResShift parity fixture folder")
    p.add_argument("--unet", default="unet_sr_tiny", help="its UNet entry (the teacher)")
    p.add_argument("--vq", default="vq_f4_tiny", help="its autoencoder entry")
    p.add_argument("--steps", type=int, default=4, help="diffusion steps (SinSR's --steps)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out_path", required=True)
    return p.parse_args(argv)


class _Inert(type):
    """Any attribute is another inert class; calling one fails loudly."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert(name, (), {})

    def __call__(cls, *args, **kwargs):
        raise RuntimeError("torchvision is not available in this environment")


class _InertTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__version__ = "0.0"

        def attr(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Inert(name, (), {})
        module.__getattr__ = attr
        return module

    def exec_module(self, module):
        pass


def _import_torchvision_or_stand_in():
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError, OSError) as e:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _InertTorchvision())
        print(f"dump_sinsr: torchvision unusable ({str(e).splitlines()[0]}); using an inert "
              "stand-in", file=sys.stderr)


def _sinsr_unet_params(params: dict) -> dict:
    """Our UNet params -> SinSR's UNetModelSwin kwargs (lq concatenated, counted in in_channels)."""
    if params.get("cond_mask") or params.get("lq_size", params["image_size"]) != params["image_size"]:
        fail("SinSR's UNet concatenates the LQ image directly: the UNet entry needs "
             "lq_size == image_size and no cond_mask")
    out = {k: v for k, v in params.items() if k not in ("lq_size", "cond_mask")}
    out["in_channels"] = params["in_channels"] + (3 if params.get("cond_lq", True) else 0)
    return out


def main(argv=None):
    args = parse_args(argv)
    root = pathlib.Path(args.sinsr).expanduser().resolve()
    if not (root / "models" / "gaussian_diffusion.py").is_file() or not (root / "configs" / "SinSR.yaml").is_file():
        fail(f"{root}: not a SinSR checkout (models/gaussian_diffusion.py, configs/SinSR.yaml expected)")
    parity = pathlib.Path(args.parity).resolve()
    entries = json.loads((parity / "fixtures.json").read_text())
    for key in (args.unet, args.vq):
        if key not in entries:
            fail(f"{parity / 'fixtures.json'}: no entry {key!r}")
    try:
        import numpy as np
        import torch
        from omegaconf import OmegaConf
    except ImportError as e:
        fail(f"run this in a PyTorch environment with numpy and omegaconf ({e})")
    _import_torchvision_or_stand_in()
    sys.path.insert(0, str(root))
    from ldm.models.autoencoder import VQModelTorch
    from models.script_util import create_gaussian_diffusion
    from models.unet import UNetModelSwin
    from utils.util_net import reload_model

    cfg = OmegaConf.load(root / "configs" / "SinSR.yaml")
    diff_params = OmegaConf.to_container(cfg.diffusion.params, resolve=True)
    diff_params["steps"] = args.steps
    flags = {"learn_xT": bool(cfg.train.get("learn_xT", False)),
             "finetune_use_gt": float(cfg.train.get("finetune_use_gt", 0.0))}
    unet_entry, vq_entry = entries[args.unet], entries[args.vq]
    torch.manual_seed(args.seed)
    teacher = UNetModelSwin(**_sinsr_unet_params(unet_entry["params"]))
    reload_model(teacher, torch.load(parity / unet_entry["checkpoint"], map_location="cpu"))
    vq = VQModelTorch(**vq_entry["params"]).eval()
    vq.load_state_dict(torch.load(parity / vq_entry["checkpoint"], map_location="cpu"))
    student = copy.deepcopy(teacher)
    gen = torch.Generator().manual_seed(args.seed)
    named = dict(student.named_parameters())
    with torch.no_grad():
        for name in OVERRIDES:
            p = named[name]
            p.add_(0.5 * p.std() * torch.randn(p.shape, generator=gen))
    diffusion = create_gaussian_diffusion(**diff_params)
    sf, size, last = int(diff_params["sf"]), int(unet_entry["params"]["image_size"]), diffusion.num_timesteps - 1

    lq = torch.rand((args.batch, 3, size, size), generator=gen) * 2 - 1
    kwargs = {"lq": lq}
    with torch.no_grad():
        z_y = diffusion.encode_first_stage(lq, vq, up_sample=True)
        noise_prior = torch.randn(z_y.shape, generator=gen)
        steps = list(diffusion.ddim_sample_loop_progressive(
            y=lq, model=teacher, noise=noise_prior, first_stage_model=vq, clip_denoised=False,
            model_kwargs=kwargs))
        samples = torch.stack([s["sample"] for s in steps])
        onestep = diffusion.p_sample_loop(y=lq, model=student, first_stage_model=vq,
                                          noise=noise_prior, clip_denoised=False,
                                          model_kwargs=kwargs, one_step=True, apply_decoder=False)
        ddim_io = {"lq": lq, "z_y": z_y, "noise_prior": noise_prior, "samples": samples,
                   "pred_xstart": torch.stack([s["pred_xstart"] for s in steps]),
                   "out": diffusion.decode_first_stage(samples[-1], vq),
                   "onestep_pred": onestep["pred_xstart"],
                   "onestep_out": diffusion.decode_first_stage(onestep["sample"], vq)}

    hq = torch.rand((args.batch, 3, size * sf, size * sf), generator=gen) * 2 - 1
    noise = torch.randn(z_y.shape, generator=gen)
    tt = torch.full((args.batch,), last, dtype=torch.int64)
    student.zero_grad()
    terms, z_t, pred_zstart = diffusion.training_losses_distill(
        student, teacher, hq, lq, tt, first_stage_model=vq, model_kwargs=kwargs, noise=noise,
        learn_xT=flags["learn_xT"], finetune_use_gt=flags["finetune_use_gt"])
    terms["loss"].mean().backward()
    with torch.no_grad():
        z0_teacher = diffusion.ddim_sample_loop(lq, teacher, noise, vq, clip_denoised=False,
                                                apply_decoder=False, model_kwargs=kwargs)["sample"]
    distill_io = {"hq": hq, "lq": lq, "noise": noise, "z_t": z_t, "pred_zstart": pred_zstart,
                  "z0_teacher": z0_teacher,
                  **{k: terms[k] for k in ("loss", "mse", "mse_xT", "mse_gt")},
                  **{f"grad:{name}": named[name].grad for name in OVERRIDES}}

    out = pathlib.Path(args.out_path)
    out.mkdir(parents=True, exist_ok=True)

    def save(name, arrays):
        np.savez_compressed(out / name, **{k: v.detach().numpy().astype(np.float32)
                                           for k, v in arrays.items()})
    save("ddim_io.npz", ddim_io)
    save("distill_io.npz", distill_io)
    save("student_overrides.npz", {name: named[name] for name in OVERRIDES})
    rel = lambda p: os.path.relpath(pathlib.Path(p).resolve(), out.resolve())  # noqa: E731
    schedule = {k: np.asarray(getattr(diffusion, k), np.float64).tolist()
                for k in ("sqrt_etas", "etas", "etas_prev", "ddim_coef1", "ddim_coef2")}
    schedule["timestep_map"] = [int(i) for i in diffusion.timestep_map]
    meta = {"unet": {"params": unet_entry["params"], "checkpoint": rel(parity / unet_entry["checkpoint"])},
            "vq": {"params": vq_entry["params"], "checkpoint": rel(parity / vq_entry["checkpoint"])},
            "student_overrides": "student_overrides.npz", "diffusion": diff_params, "flags": flags,
            "schedule": schedule, "ddim": "ddim_io.npz", "distill": "distill_io.npz",
            "batch": args.batch, "seed": args.seed}
    (out / "fixtures.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out}: {diffusion.num_timesteps} steps, latent {tuple(z_y.shape)}, "
          f"loss {terms['loss'].mean().item():.4f}")


if __name__ == "__main__":
    main()
