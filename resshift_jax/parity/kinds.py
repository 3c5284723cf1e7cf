"""Fixture-kind adapters: compute each kind's arrays with the project's own code.

Each adapter takes (name, entry, context) and returns {array name: NCHW value} for the
runner to compare with the fixture's io file.
"""
import ast
import math
import operator
import re
from typing import Callable, Dict, NamedTuple

import numpy as np

from resshift_jax.parity.chain import sampler_arrays
from resshift_jax.parity.layout import nchw, nhwc


class Context(NamedTuple):
    """What a kind's adapter needs: the fixture folder, all entries, the compute dtype."""
    root: object
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
        from resshift_jax.weights import load_network
        entry = self.entries[name]
        return load_network(entry["kind"], entry["params"], self.root / entry["checkpoint"],
                            dtype=getattr(jnp, self.dtype))

    def config(self, entry):
        """A model config for a chain entry, naming its networks' checkpoints as weights."""
        import ml_collections
        diffusion = dict(entry["diffusion"])
        unet, vq = self.entries[entry["unet"]], self.entries[entry["autoencoder"]]
        return ml_collections.ConfigDict({
            "sf": int(diffusion.pop("sf")), "model": unet["params"], "diffusion": diffusion,
            "autoencoder": {"params": vq["params"], "ckpt": str(self.root / vq["checkpoint"])},
            "sample": {"unet_weights": str(self.root / unet["checkpoint"])}})

    def restorer(self, entry):
        import jax.numpy as jnp
        from resshift_jax.builder import build_restorer
        return build_restorer(self.config(entry), dtype=getattr(jnp, self.dtype))


def _unet(name, entry, ctx: Context) -> dict:
    import jax
    io = ctx.io(entry)
    model, params = ctx.network(name)
    mask = nhwc(io["mask"]) if "mask" in io else None
    out = jax.jit(model.apply)({"params": params}, nhwc(io["x"]), io["t"], nhwc(io["lq"]), mask)
    return {"out": nchw(out)}


def _vq(name, entry, ctx: Context) -> dict:
    import jax
    io = ctx.io(entry)
    model, params = ctx.network(name)

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


def _train_loss(name, entry, ctx: Context) -> dict:
    from resshift_jax.train.objective import diffusion_terms, latent_pair
    io = ctx.io(entry)
    restorer, params = ctx.restorer(entry)
    lq = nhwc(io["lq"])
    z_start, z_y = latent_pair(restorer, params["vq"], nhwc(io["hq"]), lq)
    mask = nhwc(io["mask"]) if "mask" in io else None
    terms = diffusion_terms(restorer, params["unet"], z_start, z_y, lq, io["t"],
                            nhwc(io["noise"]), mask)
    return {"z_t": nchw(terms["z_t"]), "pred_zstart": nchw(terms["pred_zstart"]),
            "mse": np.asarray(terms["mse"])}


def _bicubic(name, entry, ctx: Context) -> dict:
    from resshift_jax.resize import bicubic_upsample
    io = ctx.io(entry)
    return {f"up{s}": nchw(bicubic_upsample(nhwc(io["y"]), s)) for s in entry["scales"]}


def _fake_net(tiles: np.ndarray, sf: int) -> np.ndarray:
    """The tiling fixture's stand-in network: nearest upsample * 2 + per-tile mean (NHWC)."""
    up = np.repeat(np.repeat(tiles, sf, axis=1), sf, axis=2)
    return up * 2 + tiles.mean(axis=(1, 2, 3), keepdims=True)


def _tiling(name, entry, ctx: Context) -> dict:
    from resshift_jax.tiling import chop_and_run, patch_starts
    size, stride, sf = int(entry["chop_size"]), int(entry["chop_stride"]), int(entry["sf"])
    image = nhwc(ctx.io(entry)["image"])
    out = chop_and_run(image, lambda tiles, ids: _fake_net(tiles, sf), chop_size=size,
                       chop_stride=stride, sf=sf, blend="average")
    return {"out": nchw(out),
            "starts_h": np.asarray(patch_starts(image.shape[1], size, stride), np.int64),
            "starts_w": np.asarray(patch_starts(image.shape[2], size, stride), np.int64)}


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.USub: operator.neg}


def _number(text: str) -> float:
    """A fixture number: a literal or arithmetic on literals and `pi` (e.g. 'pi/3')."""
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id == "pi":
            return math.pi
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.operand))
        raise ValueError(f"not a fixture number: {text!r}")
    return float(value(ast.parse(text.strip(), mode="eval").body))


def kernel_from_text(spec: str) -> np.ndarray:
    """A kernel described as in the fixture, e.g. 'bivariate_plateau(15, 1.2, 2.2, beta=1.4)'."""
    from resshift_jax.data import kernels
    name, args = re.fullmatch(r"(\w+)\((.*)\)", spec).groups()
    pos, kw, flags = [], {}, set()
    for part in (p.strip() for p in args.split(",")):
        if "=" in part:
            key, text = part.split("=")
            kw[key.strip()] = _number(text)
        elif re.fullmatch(r"[a-z_]+", part):
            flags.add(part)
        else:
            pos.append(_number(part))
    if name == "circular_lowpass_kernel":
        return kernels.circular_lowpass(kw["cutoff"], int(kw["kernel_size"]), int(kw.get("pad_to", 0)))
    size = int(pos.pop(0))
    sig_x = kw.get("sig_x", pos[0] if pos else None)
    sig_y = kw.get("sig_y", pos[1] if len(pos) > 1 else sig_x)
    iso = "isotropic" in flags
    if name == "bivariate_Gaussian":
        return kernels.bivariate_gaussian(size, sig_x, sig_y, kw.get("theta", 0.0), iso)
    fn = {"bivariate_generalized_Gaussian": kernels.bivariate_generalized_gaussian,
          "bivariate_plateau": kernels.bivariate_plateau}[name]
    return fn(size, sig_x, sig_y, kw.get("theta", 0.0), kw["beta"], iso)


def degradation_arrays(entry: dict, io: dict) -> dict:
    """The `degradation` fixture: kernels, per-example filtering, imresize, Y, metrics."""
    from resshift_jax import metrics
    from resshift_jax.data import imresize, kernels
    out = {f"kernel_{k}": kernel_from_text(v) for k, v in entry["kernel_params"].items()}
    images = io["filter2d_in"].transpose(0, 2, 3, 1)
    out["filter2d_out"] = np.stack([kernels.filter2d(img, k) for img, k in
                                    zip(images, io["filter2d_kernels"])]).transpose(0, 3, 1, 2)
    out["imresize_down4"] = imresize.imresize(io["photo"], 1 / 4)
    out["imresize_up2"] = imresize.imresize(io["photo"], 2)
    out["ycbcr_y"] = metrics.rgb2y(io["photo"]).astype(np.float32)
    a, b = io["metric_a"], io["metric_b"]
    out.update(psnr_rgb=np.float64(metrics.psnr(a, b, 4)), psnr_y=np.float64(metrics.psnr(a, b, 4, True)),
               ssim_rgb=np.float64(metrics.ssim(a, b, 4)), ssim_y=np.float64(metrics.ssim(a, b, 4, True)))
    return out


def _degradation(name, entry, ctx: Context) -> dict:
    return degradation_arrays(entry, ctx.io(entry))


ADAPTERS: Dict[str, Callable] = {
    "unet": _unet, "vq": _vq, "bicubic": _bicubic, "sampler": sampler_arrays,
    "train_loss": _train_loss, "tiling": _tiling, "degradation": _degradation,
}
