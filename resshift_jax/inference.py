"""Restore whole images with the compiled chain: padding, tiling, masks, batching.

`ImageRestorer` wraps one jitted `restore` (compiled once per tile/image shape) with the
reference inference's conventions: inputs reflect-padded to a multiple of the model's
`lq_size` and cropped back, images larger than `chop_size` (LQ pixels) cut into
overlapping tiles fed `chop_bs` at a time, inpainting masks in {-1, 1} (1 = unknown)
with the known pixels pasted back, outputs clamped to [0, 1]. Build one with
`builder.image_restorer(config, ...)`.

Noise is drawn per image and tile from (seed, the image's name, the tile's index), never
from a call counter: an image gets the same result alone, in a batch, or as any slot.
"""
import dataclasses
import zlib
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax import tiling
from resshift_jax.sampling import Restorer, make_restore_fn


def image_key(seed: int, name: str):
    """The PRNG key of the image called `name` (e.g. its file name) under `seed`; a file name
    that is not valid UTF-8 hashes by its bytes (surrogate escapes)."""
    digest = zlib.crc32(name.encode("utf-8", "surrogateescape")) & 0x7FFFFFFF
    return jax.random.fold_in(jax.random.key(seed), digest)


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

    @property
    def sf(self) -> int:
        return self.restorer.sf

    def _run_padded(self, batch: np.ndarray, has_mask: bool, keys) -> np.ndarray:
        """NHWC [-1, 1] batch (mask as last channel) -> NHWC output, padded to lq_size multiples."""
        padded, size = tiling.pad_to_multiple(batch, self.lq_size)
        lq, mask = (padded[..., :-1], padded[..., -1:]) if has_mask else (padded, None)
        out = self._fn(self.params, jnp.asarray(lq),
                       None if mask is None else jnp.asarray(mask), keys)
        return tiling.crop_to(np.asarray(out), size, self.sf)

    def restore_batch(self, images: np.ndarray, masks: Optional[np.ndarray] = None,
                      names: Optional[Sequence[str]] = None) -> np.ndarray:
        """NHWC [0, 1] images of one size (and N,H,W,1 masks in {0,1}, 1 = unknown) -> NHWC [0, 1].

        `names` (default "0", "1", ...) key each image's noise; give file names so that an
        image's result does not depend on the others.
        """
        names = [str(i) for i in range(len(images))] if names is None else list(names)
        image_keys = [image_key(self.seed, name) for name in names]

        def tile_keys(ids):
            return jnp.stack([jax.random.fold_in(image_keys[i], tile) for i, tile in ids])

        x = images.astype(np.float32) * 2 - 1
        has_mask = masks is not None
        if has_mask:
            x = np.concatenate([x, masks.astype(np.float32) * 2 - 1], axis=-1)
        height, width = x.shape[1:3]
        if max(height, width) > self.chop_size:
            out = tiling.chop_and_run(
                x, lambda tiles, ids: self._run_padded(tiles, has_mask, tile_keys(ids)),
                chop_size=self.chop_size, chop_stride=self.chop_stride, sf=self.sf,
                batch_size=self.chop_bs, blend=self.blend, progress=self.progress)
        else:
            out = self._run_padded(x, has_mask, tile_keys([(i, 0) for i in range(len(x))]))
        out = np.clip(out * 0.5 + 0.5, 0.0, 1.0)
        if has_mask and self.mask_back:
            known = 1.0 - masks.astype(np.float32)
            out = out * (1.0 - known) + images.astype(np.float32) * known
        return out
