"""Restore whole images with the compiled chain: padding, tiling, masks, batching.

`ImageRestorer` wraps one jitted `restore` (compiled once per tile/image shape) with the
reference inference's conventions: inputs reflect-padded to a multiple of the model's
`lq_size` and cropped back, images larger than `chop_size` (LQ pixels) cut into
overlapping tiles fed `chop_bs` at a time, inpainting masks in {-1, 1} (1 = unknown)
with the known pixels pasted back, outputs clamped to [0, 1].
"""
import dataclasses
import os
import pathlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax import diffusion, tiling
from resshift_jax.convert.loading import (build_model, load_params, plain_params, read_converted,
                                          save_converted)
from resshift_jax.convert.pth import CheckpointError
from resshift_jax.sampling import Restorer, make_restore_fn


def build_restorer(config, *, unet_ckpt, vq_ckpt, weights_dir="weights", dtype=jnp.float32):
    """(Restorer, params) for a config whose `model`/`autoencoder`/`diffusion` follow the reference.

    `unet_ckpt`/`vq_ckpt` are file paths (.pth or converted .safetensors) or released names
    (keys of `weights.CHECKPOINTS`, fetched into `weights_dir`). A config without an
    autoencoder restores in pixel space.
    """
    unet, unet_params = load_network("unet", config.model, unet_ckpt, weights_dir, dtype)
    params = {"unet": unet_params}
    vq = None
    if config.get("autoencoder") is not None:
        vq, params["vq"] = load_network("vq", config.autoencoder.params, vq_ckpt, weights_dir,
                                        dtype)
    schedule = diffusion.make_schedule(**config.diffusion.to_dict())
    restorer = Restorer(unet=unet, vq=vq, schedule=schedule, sf=int(config.diffusion.sf))
    return restorer, params


@dataclasses.dataclass
class ImageRestorer:
    """Callable HWC [0, 1] image (+ optional HW1 mask) -> restored HWC [0, 1] image."""
    restorer: Restorer
    params: dict
    lq_size: int
    chop_size: int
    chop_stride: int
    chop_bs: int = 1
    blend: str = "gaussian"
    seed: int = 12345
    mask_back: bool = True
    progress: Optional[Callable[[int, int], None]] = None

    def __post_init__(self):
        self._fn = make_restore_fn(self.restorer)
        self._calls = 0

    @property
    def sf(self) -> int:
        return self.restorer.sf

    def _next_key(self):
        """A fresh key per network call, derived from the seed and the call count."""
        self._calls += 1
        return jax.random.fold_in(jax.random.key(self.seed), self._calls)

    def _run_padded(self, batch: np.ndarray, has_mask: bool) -> np.ndarray:
        """NHWC [-1, 1] batch (mask as last channel) -> NHWC output, padded to lq_size multiples."""
        padded, size = tiling.pad_to_multiple(batch, self.lq_size)
        lq, mask = (padded[..., :-1], padded[..., -1:]) if has_mask else (padded, None)
        out = self._fn(self.params, jnp.asarray(lq),
                       None if mask is None else jnp.asarray(mask), self._next_key())
        return tiling.crop_to(np.asarray(out), size, self.sf)

    def restore_batch(self, images: np.ndarray, masks: Optional[np.ndarray] = None) -> np.ndarray:
        """NHWC [0, 1] images of one size (and N,H,W,1 masks in {0,1}, 1 = unknown) -> NHWC [0, 1]."""
        x = images.astype(np.float32) * 2 - 1
        has_mask = masks is not None
        if has_mask:
            x = np.concatenate([x, masks.astype(np.float32) * 2 - 1], axis=-1)
        height, width = x.shape[1:3]
        if max(height, width) > self.chop_size:
            out = tiling.chop_and_run(
                x, lambda tiles: self._run_padded(tiles, has_mask),
                chop_size=self.chop_size, chop_stride=self.chop_stride, sf=self.sf,
                batch_size=self.chop_bs, blend=self.blend, progress=self.progress)
        else:
            out = self._run_padded(x, has_mask)
        out = np.clip(out * 0.5 + 0.5, 0.0, 1.0)
        if has_mask and self.mask_back:
            known = 1.0 - masks.astype(np.float32)
            out = out * (1.0 - known) + images.astype(np.float32) * known
        return out


def resolve_checkpoint(spec, weights_dir) -> str:
    """A checkpoint path from a file path or a released name (downloaded if absent).

    A released `.pth` is converted once to `.safetensors` beside it, so later runs load
    without re-reading the pickle; a given file path is used as is.
    """
    from resshift_jax.weights import CHECKPOINTS, ensure_weights
    if spec not in CHECKPOINTS:
        if not os.path.isfile(spec):
            raise CheckpointError(f"{spec}: checkpoint file not found (nor a released name: "
                                  f"{', '.join(CHECKPOINTS)})")
        return spec
    return str(ensure_weights(spec, weights_dir))


def load_network(kind: str, arch, spec, weights_dir, dtype=jnp.float32):
    """(module, float32 params) for `kind`, from a path or a released name, cached converted."""
    model = build_model(kind, arch, dtype=dtype)
    path = pathlib.Path(resolve_checkpoint(spec, weights_dir))
    if path.suffix == ".pth":
        cached = path.with_suffix(".safetensors")
        if cached.is_file() and read_converted(cached)[1] == plain_params(arch):
            return model, load_params(kind, cached, model)
        params = load_params(kind, path, model)
        if spec != os.fspath(path):  # a released file: cache its conversion
            save_converted(cached, kind, arch, params)
        return model, params
    return model, load_params(kind, path, model)
