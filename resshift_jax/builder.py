"""One constructor from a config to a restorer: networks, schedule, weights, image handling.

Everything that puts a model together goes through here: `sample.py`, training (its
structure, frozen autoencoder and validation), the parity runner, the benchmarks and the
tests. Weight specs are anything `weights.resolve` accepts.
"""
from typing import Optional

import jax.numpy as jnp

from resshift_jax import diffusion, tiling
from resshift_jax.convert.loading import build_model
from resshift_jax.convert.pth import CheckpointError
from resshift_jax.inference import ImageRestorer
from resshift_jax.sampling import Restorer
from resshift_jax.weights import load_network


def schedule_from_config(config) -> diffusion.Schedule:
    return diffusion.make_schedule(**config.diffusion.to_dict(), sf=int(config.sf))


def sampler_of(config) -> str:
    """The reverse step a config restores with (`sample.sampler`; SinSR students: onestep)."""
    return (config.get("sample") or {}).get("sampler", "ddpm")


def restorer_from_config(config, dtype=jnp.float32) -> Restorer:
    """The UNet, the optional VQ autoencoder and the schedule of `config`; no weights."""
    unet = build_model("unet", config.model, dtype=dtype)
    vq = None
    if config.get("autoencoder") is not None:
        vq = build_model("vq", config.autoencoder.params, dtype=dtype)
    return Restorer(unet=unet, vq=vq, schedule=schedule_from_config(config), sf=int(config.sf),
                    sampler=sampler_of(config))


def vq_spec(config, vq_ckpt=None):
    """The autoencoder weights to use: the given spec, else the config's."""
    return vq_ckpt or (config.autoencoder.get("ckpt") if config.get("autoencoder") else None)


def build_restorer(config, *, dtype=jnp.float32, unet_ckpt=None, vq_ckpt=None,
                   weights_dir="weights", ema: bool = True):
    """(Restorer computing in `dtype`, float32 params {"unet"[, "vq"]}) of `config`.

    `unet_ckpt` defaults to `config.sample.unet_weights`, `vq_ckpt` to
    `config.autoencoder.ckpt`; a training workdir gives its EMA weights unless `ema=False`.
    A config without an autoencoder restores in pixel space.
    """
    unet_ckpt = unet_ckpt or config.sample.get("unet_weights")
    if not unet_ckpt:
        raise CheckpointError("no UNet weights: this config names none, give --unet_ckpt "
                              "(a released name, a .pth/.safetensors file or a training workdir)")
    unet, unet_params = load_network("unet", config.model, unet_ckpt, weights_dir, dtype, ema=ema)
    params = {"unet": unet_params}
    vq = None
    if config.get("autoencoder") is not None:
        spec = vq_spec(config, vq_ckpt)
        if not spec:
            raise CheckpointError("no autoencoder weights: give --vq_ckpt (or autoencoder.ckpt)")
        vq, params["vq"] = load_network("vq", config.autoencoder.params, spec, weights_dir, dtype)
    restorer = Restorer(unet=unet, vq=vq, schedule=schedule_from_config(config), sf=int(config.sf),
                        sampler=sampler_of(config))
    return restorer, params


def tile_geometry(config, chop_size: Optional[int] = None, chop_stride: Optional[int] = None):
    """(tile, stride) in LQ pixels: the config's `sample` values unless given."""
    return tiling.chop_geometry(
        config.sample.chop_size if chop_size is None else chop_size,
        config.sample.chop_stride if chop_stride is None else chop_stride, int(config.sf))


def image_restorer(config, restorer: Restorer, params: dict, *, chop_size=None, chop_stride=None,
                   chop_bs: int = 1, bs: int = 1, blend=None, seed=None, progress=None,
                   pad: str = "auto", devices=None) -> ImageRestorer:
    """The whole-image restorer `sample.py` and training validation share; batches shard
    over the local devices (`devices`) that divide `bs` and `chop_bs`."""
    size, stride = tile_geometry(config, chop_size, chop_stride)
    needs_mask = bool(config.model.get("cond_mask", False))
    return ImageRestorer(
        restorer, params, lq_size=int(config.sample.get("padding_offset") or config.model.lq_size),
        chop_size=size, chop_stride=stride, chop_bs=chop_bs, bs=bs, pad=pad, devices=devices,
        blend=blend or config.sample.blend,
        seed=int(config.sample.seed if seed is None else seed),
        mask_back=bool(config.sample.get("mask_back", needs_mask)), progress=progress)


def random_params(restorer: Restorer, key) -> dict:
    """Freshly initialised float32 params {"unet"[, "vq"]}: random weights at the
    architecture's sizes, no layer zeroed, for benchmarks and tests (training from scratch
    starts from `unet.init_params`, the reference's initialisation)."""
    import jax
    from resshift_jax.models.unet import example_inputs
    unet_key, vq_key = jax.random.split(key)
    params = {"unet": jax.jit(restorer.unet.init)(unet_key, *example_inputs(restorer.unet))["params"]}
    if restorer.vq is not None:
        image = jnp.zeros((1, 32, 32, 3), jnp.float32)
        params["vq"] = jax.jit(restorer.vq.init)(vq_key, image)["params"]
    return params
