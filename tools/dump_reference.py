"""Dump the PyTorch reference's numbers on your images as a parity fixture set.

Run in YOUR PyTorch environment (torch, omegaconf, timm, einops) with YOUR checkout of
zsyOAOA/ResShift; nothing of the reference is copied into resshift-jax:

    python tools/dump_reference.py --resshift ~/ResShift --task realsr --version v3 \
        --weights ~/ResShift/weights -i my_images/ -o /tmp/parity_v3
    python -m resshift_jax.parity /tmp/parity_v3 [--dtype bfloat16] [--report report.md]

It writes `fixtures.json` (format: tests/fixtures/parity/README.md) with a `unet` and a
`vq` entry (one forward pass each, on the first image) and one `sampler` entry per image:
the whole reverse chain with every noise recorded, so our chain can be fed the same
noises. Checkpoints are referenced by path, not copied. `--random_weights SEED` draws
every parameter at random instead (saved into OUT, since they exist nowhere else).

`--float64` also runs each chain in double precision (models and inputs cast, the
reference's float32 pins patched at run time: tools/reference_float64.py) and
`--floor_threads 1,2` repeats the float32 chain under torch.set_num_threads(n) for each n
(the io holds the first), to measure the reference's own float32 error against float64:
each sampler entry then names a `float64` file (format: docs/parity.md).

`--set KEY=VALUE` overrides a field of the release's yaml before anything is built (an
OmegaConf dotlist, repeatable), e.g. a tiny architecture and a short chain for a test
fixture: `--set model.params.model_channels=16 --set diffusion.params.steps=3`.
"""
import argparse
import collections
import contextlib
import copy
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from resshift_jax import releases  # noqa: E402  (stdlib only: runs in the torch env)

_ABSENT = object()
EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def fail(message: str):
    sys.exit(f"dump_reference: {message}")


def _thread_counts(text: str):
    try:
        counts = [int(n) for n in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct thread counts like 1,2")
    return counts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resshift", required=True, help="your checkout of zsyOAOA/ResShift")
    p.add_argument("--task", required=True, choices=releases.TASKS)
    p.add_argument("--version", default="v3", choices=releases.REALSR_VERSIONS, help="realsr only")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="folder with the released .pth files")
    source.add_argument("--random_weights", type=int, metavar="SEED", help="random parameters")
    p.add_argument("-i", "--in_path", required=True, help="LQ image or folder")
    p.add_argument("-o", "--out_path", required=True, help="output fixture folder")
    p.add_argument("--mask_path", help="inpainting masks (file or folder, same names)")
    p.add_argument("--max_size", type=int, default=0, help="centre-crop LQ to at most N px")
    p.add_argument("--seed", type=int, default=12345, help="noise seed")
    p.add_argument("--float64", action="store_true", help="also run every chain in float64")
    p.add_argument("--floor_threads", type=_thread_counts, metavar="N,M",
                   help="float32 chains under these torch thread counts (needs --float64)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a field of the release's yaml (OmegaConf dotlist)")
    args = p.parse_args(argv)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        p.error(f"--set {bad[0]!r}: expected KEY=VALUE, e.g. diffusion.params.steps=3")
    if args.floor_threads and not args.float64:
        p.error("--floor_threads measures float32 against float64: add --float64")
    return args


def _images(path: pathlib.Path):
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.suffix.lower() in EXTS)
    if not files:
        fail(f"{path}: no images")
    return files


def _random_(module, seed):
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and ("norm" in name or name.endswith("weight")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


def reference_chain(diffusion, unet, vq, lq, kwargs, noise_prior, noise_steps):
    """The reference's reverse chain fed the recorded noises: z_y, every step, the decode."""
    import torch
    z_y = diffusion.encode_first_stage(lq, vq, up_sample=True)
    x = diffusion.prior_sample(z_y, noise_prior)
    samples, preds = [], []
    for i, t in enumerate(reversed(range(diffusion.num_timesteps))):
        tt = torch.full((lq.shape[0],), t, dtype=torch.int64)
        res = diffusion.p_mean_variance(unet, x, z_y, tt, clip_denoised=False, model_kwargs=kwargs)
        x = res["mean"] + (t > 0) * torch.exp(0.5 * res["log_variance"]) * noise_steps[i]
        samples.append(x), preds.append(res["pred_xstart"])
    return {"z_y": z_y, "samples": torch.stack(samples), "pred_xstart": torch.stack(preds),
            "out": diffusion.decode_first_stage(x, vq)}


def _indices(vq, latent):
    """The code index of every latent cell, (B, h, w), by the reference's own quantizer."""
    _, _, (_, _, indices) = vq.quantize(latent)
    return indices.reshape(latent.shape[0], *latent.shape[2:])


def _decode_indices(vq, indices):
    """Decode the codebook entries that `indices` (B, h, w) name."""
    shape = (*indices.shape, vq.quantize.e_dim)
    return vq.decode(vq.quantize.get_codebook_entry(indices.reshape(-1), shape),
                     force_not_quantize=True)


@contextlib.contextmanager
def torch_threads(n: int):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _relative_error(ours, truth) -> float:
    """The contract's measure max|a - b| / max(1, max|b|), in float64."""
    a, b = ours.double(), truth.double()
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def float64_arrays(diffusion, models64, vq, lq, kwargs, noises, runs, threads) -> dict:
    """The float64 chain, its final code indices, and each float32 run's error against it."""
    import numpy as np
    from reference_float64 import double_precision  # beside this file; needs torch
    unet64, vq64 = models64
    start = time.time()
    with double_precision(unet64) as watch:
        truth = reference_chain(diffusion, unet64, vq64, lq.double(),
                       {k: v.double() for k, v in kwargs.items()}, *(n.double() for n in noises))
        indices = _indices(vq64, truth["samples"][-1] / diffusion.scale_factor)
    if watch.leaks:
        fail(f"the float64 run computed in low precision at {dict(watch.leaks)}: a float32 pin "
             "of this reference version that tools/reference_float64.py does not patch")
    print(f"  float64 chain {time.time() - start:.0f} s", file=sys.stderr)
    floor = collections.defaultdict(list)
    for n, run in zip(threads, runs):
        with torch_threads(n):
            unflipped = _decode_indices(vq, indices)
            own = _indices(vq, run["samples"][-1] / diffusion.scale_factor)
        for key in ("z_y", "out"):
            floor[key].append(_relative_error(run[key], truth[key]))
        for key in ("samples", "pred_xstart"):
            floor[key].append([_relative_error(a, b) for a, b in zip(run[key], truth[key])])
        floor["out_unflipped"].append(_relative_error(unflipped, truth["out"]))
        floor["flips"].append(int((own != indices).sum()))
    arrays = {k: v.numpy() for k, v in truth.items()}
    arrays.update({f"floor_{k}": np.asarray(v) for k, v in floor.items()},
                  indices=indices.numpy(), floor_threads=np.asarray(threads, np.int64))
    return arrays


def main(argv=None):
    args = parse_args(argv)
    root = pathlib.Path(args.resshift).expanduser().resolve()
    if not (root / "models" / "unet.py").is_file() or not (root / "configs").is_dir():
        fail(f"{root}: not a ResShift checkout (models/unet.py and configs/ expected)")
    if args.task.startswith("inpaint") and not args.mask_path:
        fail("inpainting needs --mask_path")
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
        from omegaconf import OmegaConf
        from PIL import Image
    except ImportError as e:
        fail(f"run this in a PyTorch environment with omegaconf and pillow ({e})")
    sys.path.insert(0, str(root))
    from ldm.models.autoencoder import VQModelTorch
    from models.script_util import create_gaussian_diffusion
    from models.unet import UNetModelSwin

    release = releases.release(args.task, args.version)
    yaml_name = release.reference_yaml
    unet_file, vq_file = (releases.CHECKPOINTS[k].remote_name for k in (release.unet, release.vq))
    cfg = OmegaConf.load(root / "configs" / f"{yaml_name}.yaml")
    for override in args.overrides:
        key = override.split("=", 1)[0]
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            fail(f"--set {override}: {yaml_name}.yaml has no field {key}")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
    model_params = OmegaConf.to_container(cfg.model.params, resolve=True)
    vq_params = OmegaConf.to_container(cfg.autoencoder.params, resolve=True)
    diff_params = OmegaConf.to_container(cfg.diffusion.params, resolve=True)
    unet, vq = UNetModelSwin(**model_params).eval(), VQModelTorch(**vq_params).eval()
    out = pathlib.Path(args.out_path)
    out.mkdir(parents=True, exist_ok=True)
    if args.weights:
        ckpts = {}
        for key, model, name in (("unet", unet, unet_file), ("vq", vq, vq_file)):
            path = pathlib.Path(args.weights).expanduser().resolve() / name
            if not path.is_file():
                fail(f"{path}: missing; download {name} from the ResShift release into {args.weights}")
            state = torch.load(path, map_location="cpu")
            state = state.get("state_dict", state)
            result = model.load_state_dict({k.removeprefix("module.").removeprefix("_orig_mod."): v
                                            for k, v in state.items()}, strict=False)
            if result.missing_keys:  # buffers like attn_mask may be absent; parameters may not
                fail(f"{path}: does not fit the {key} architecture; missing "
                     f"{result.missing_keys[:5]}")
            ckpts[key] = str(path)
    else:
        _random_(unet, args.random_weights)
        _random_(vq, args.random_weights + 1)
        ckpts = {"unet": "unet_random.pth", "vq": "vq_random.pth"}
        torch.save(unet.state_dict(), out / ckpts["unet"])
        torch.save(vq.state_dict(), out / ckpts["vq"])
    diffusion = create_gaussian_diffusion(**diff_params)
    sf, lq_size = int(diff_params["sf"]), int(model_params.get("lq_size", 64))
    gen = torch.Generator().manual_seed(args.seed)
    latent_down = 2 ** (len(vq_params["ddconfig"]["ch_mult"]) - 1)
    threads = args.floor_threads or [torch.get_num_threads()]
    models64 = (copy.deepcopy(unet).double(), copy.deepcopy(vq).double()) if args.float64 else None

    def load(path, gray=False):
        im = np.asarray(Image.open(path).convert("L" if gray else "RGB"), np.float32) / 255.0
        h, w = im.shape[:2]
        size = min(h, w, args.max_size or max(h, w))
        th, tw = (min(h, size) // lq_size) * lq_size, (min(w, size) // lq_size) * lq_size
        if th == 0 or tw == 0:
            return None
        top, left = (h - th) // 2, (w - tw) // 2
        im = im[top:top + th, left:left + tw]
        t = torch.from_numpy(im[None, None] if gray else im.transpose(2, 0, 1)[None].copy())
        return t * 2 - 1

    entries = {"unet": {"kind": "unet", "params": model_params, "checkpoint": ckpts["unet"], "io": "unet_io.npz"},
               "vq": {"kind": "vq", "params": vq_params, "checkpoint": ckpts["vq"], "io": "vq_io.npz"}}
    first = True
    for path in _images(pathlib.Path(args.in_path)):
        lq = load(path)
        if lq is None:
            print(f"skipped {path}: smaller than {lq_size} px", file=sys.stderr)
            continue
        kwargs = {"lq": lq}
        if args.task.startswith("inpaint"):
            mask_root = pathlib.Path(args.mask_path)
            mask = load(mask_root if mask_root.is_file() else mask_root / path.name, gray=True)
            if mask is None or mask.shape[-2:] != lq.shape[-2:]:
                fail(f"{path}: its mask is missing or of another size")
            kwargs["mask"] = mask
        name = f"sampler_{path.stem}"
        shape = (lq.shape[0], vq_params["embed_dim"], lq.shape[-2] * sf // latent_down,
                 lq.shape[-1] * sf // latent_down)
        noise_prior = torch.randn(shape, generator=gen)
        noise_steps = torch.stack([torch.randn(shape, generator=gen)
                                   for _ in range(diffusion.num_timesteps)])
        runs = []
        with torch.no_grad():
            for n in threads:
                start = time.time()
                with torch_threads(n):
                    runs.append(reference_chain(diffusion, unet, vq, lq, kwargs, noise_prior, noise_steps))
                print(f"  float32 chain, {n} threads: {time.time() - start:.0f} s", file=sys.stderr)
        io = {"lq": lq, "noise_prior": noise_prior, "noise_steps": noise_steps, **runs[0], **kwargs}
        np.savez(out / f"{name}_io.npz", **{k: v.numpy() for k, v in io.items()})
        entries[name] = {"kind": "sampler", "diffusion": diff_params, "unet": "unet",
                         "autoencoder": "vq", "io": f"{name}_io.npz"}
        if args.float64:
            with torch.no_grad():
                arrays = float64_arrays(diffusion, models64, vq, lq, kwargs,
                                         (noise_prior, noise_steps), runs, threads)
            np.savez(out / f"{name}_f64.npz", **arrays)
            entries[name]["float64"] = f"{name}_f64.npz"
        z_y = runs[0]["z_y"]
        if first:
            first = False
            with torch.no_grad():
                t = torch.tensor([diffusion.num_timesteps - 1])
                x_in = torch.randn(z_y.shape, generator=gen)
                np.savez(out / "unet_io.npz", x=x_in.numpy(), t=t.numpy(), lq=lq.numpy(),
                         out=unet(x_in, t, **kwargs).numpy(),
                         **({"mask": kwargs["mask"].numpy()} if "mask" in kwargs else {}))
                image = F.interpolate(lq, scale_factor=sf, mode="bicubic").clamp(-1, 1) if sf > 1 else lq
                latent = vq.encode(image)
                quantized, _, (_, _, indices) = vq.quantize(latent)
                np.savez(out / "vq_io.npz", image=image.numpy(), latent=latent.numpy(),
                         quantized=quantized.numpy(),
                         indices=indices.reshape(latent.shape[0], *latent.shape[2:]).numpy(),
                         decoded=vq.decode(latent).numpy(),
                         decoded_unquantized=vq.decode(latent, force_not_quantize=True).numpy())
        print(f"dumped {path} ({lq.shape[-2]}x{lq.shape[-1]}, latent {latent_down}x down)", file=sys.stderr)
    if first:
        fail("no usable image")
    (out / "fixtures.json").write_text(json.dumps(entries, indent=1))
    print(f"wrote {out / 'fixtures.json'} with {len(entries)} entries")


if __name__ == "__main__":
    main()
