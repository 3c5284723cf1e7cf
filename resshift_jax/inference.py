"""Restore whole images with the compiled chain: padding, tiling, masks, batching, devices.

`ImageRestorer` runs one jitted `restore` per input shape with the reference inference's
conventions: images larger than `chop_size` (LQ pixels) cut into overlapping tiles,
inpainting masks in {-1, 1} (1 = unknown) with the known pixels pasted back, outputs
clamped to [0, 1]. Two ways to pad (`pad`; "auto", the default, takes "bucket" on GPUs and
TPUs, where a compilation costs more than computing the padding, and "reference" on CPUs,
where the padding's compute costs more than a compilation):
- "bucket": an image no larger than the chop is reflect-padded to the smallest
  of a few square sizes (`tiling.bucket_sizes`), a larger one to at least the chop on each
  axis so every tile has the chop's shape; a folder of many sizes then needs at most one
  program per bucket (the largest shared with the tiles when `bs == chop_bs`).
- "reference": each image or tile reflect-padded to a multiple of `lq_size`, as the
  reference does (one program per padded size).
Batches are padded to a fixed `bs` images (`chop_bs` tiles) and sharded over a 1-D mesh of
the local devices (as many as divide both batch sizes). `prepare` compiles the programs a
folder needs, from its images' sizes, in parallel threads before the first image runs.
Build one with `builder.image_restorer(config, ...)`.

Noise is drawn per image and tile from (seed, the image's name, the tile's index), on a
canvas of the largest padded size and cropped, never from a call counter: an image gets
the same noise alone, in a batch, in any slot, on any device, and under either padding.
"""
import concurrent.futures
import dataclasses
import math
import os
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax import sharding, tiling
from resshift_jax.noise_keys import image_key
from resshift_jax.sampling import Restorer, make_restore_fn

PAD_MODES = ("auto", "bucket", "reference")


def resolve_pad(pad: str, platform: str) -> str:
    """The padding `pad` means on devices of `platform` ("auto": see the module doc)."""
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    if pad != "auto":
        return pad
    return "reference" if platform == "cpu" else "bucket"


@dataclasses.dataclass
class ImageRestorer:
    """Callable on batches: HWC [0, 1] images (+ HW1 masks) -> restored HWC [0, 1] images."""
    restorer: Restorer
    params: dict
    lq_size: int
    chop_size: int
    chop_stride: int
    chop_bs: int = 1
    bs: int = 1
    blend: str = "gaussian"
    seed: int = 12345
    mask_back: bool = True
    progress: Optional[Callable[[int, int], None]] = None
    pad: str = "auto"
    devices: Optional[Sequence] = None

    def __post_init__(self):
        if self.bs < 1 or self.chop_bs < 1:
            raise ValueError(f"batch sizes must be >= 1, got bs={self.bs}, chop_bs={self.chop_bs}")
        devices = list(self.devices if self.devices is not None else jax.local_devices())
        self.pad = resolve_pad(self.pad, devices[0].platform)
        self.mesh = sharding.make_mesh(devices[:math.gcd(len(devices), self.bs, self.chop_bs)])
        self.canvas = tiling.round_up(self.chop_size, self.lq_size)
        self.buckets = tiling.bucket_sizes(self.chop_size, self.lq_size)
        self._fn = make_restore_fn(self.restorer, noise_canvas=(self.canvas, self.canvas))
        self._programs, self._placed = {}, (None, None)
        self.compilations, self.compile_seconds = 0, 0.0

    @property
    def sf(self) -> int:
        return self.restorer.sf

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    def group_of(self, height: int, width: int):
        """Images with equal groups can share a batch."""
        if self.pad == "bucket" and max(height, width) <= self.chop_size:
            return ("bucket", tiling.bucket_of(max(height, width), self.buckets))
        return ("size", height, width)

    def program_shapes(self, height: int, width: int) -> set:
        """The (batch, H, W) LQ inputs of the programs an image of this size runs: a folder's
        compilations are the union over its images (one more set with masks)."""
        m = self.lq_size
        if max(height, width) <= self.chop_size:
            if self.pad == "bucket":
                side = tiling.bucket_of(max(height, width), self.buckets)
                return {(self.bs, side, side)}
            return {(self.bs, tiling.round_up(height, m), tiling.round_up(width, m))}
        if self.pad == "bucket":
            return {(self.chop_bs, self.canvas, self.canvas)}
        return {(self.chop_bs, tiling.round_up(min(height, self.chop_size), m),
                 tiling.round_up(min(width, self.chop_size), m))}

    def _params_on_mesh(self):
        """`params` replicated over the mesh (placed again only when they are replaced)."""
        if self._placed[0] is not self.params:
            self._placed = (self.params, jax.device_put(self.params, sharding.replicated(self.mesh)))
        return self._placed[1]

    def _run(self, batch: np.ndarray, has_mask: bool, keys) -> np.ndarray:
        """NHWC [-1, 1] batch (mask as last channel) -> NHWC output, padded to lq_size multiples."""
        padded, size = tiling.pad_to_multiple(batch, self.lq_size)
        split = sharding.data_sharding(self.mesh)
        lq = jax.device_put(padded[..., :3] if has_mask else padded, split)
        mask = jax.device_put(padded[..., 3:], split) if has_mask else None
        keys = jax.device_put(jnp.stack(keys), split)
        params = self._params_on_mesh()
        signature = (lq.shape, None if mask is None else mask.shape)
        if signature not in self._programs:
            start = time.perf_counter()
            self._programs[signature] = self._compile(signature, params)
            self.compile_seconds += time.perf_counter() - start
            self.compilations += 1
        out = self._programs[signature](params, lq, mask, keys)
        return tiling.crop_to(np.asarray(out), size, self.sf)

    def _compile(self, signature, params):
        """The program of one (LQ shape, mask shape or None) signature, lowered from shapes."""
        lq_shape, mask_shape = signature
        split = sharding.data_sharding(self.mesh)
        lq = jax.ShapeDtypeStruct(lq_shape, jnp.float32, sharding=split)
        mask = None if mask_shape is None else jax.ShapeDtypeStruct(mask_shape, jnp.float32,
                                                                      sharding=split)
        keys = jax.ShapeDtypeStruct(lq_shape[:1], jax.random.key(0).dtype, sharding=split)
        return self._fn.lower(params, lq, mask, keys).compile()

    def prepare(self, sizes, has_mask: bool = False, workers: Optional[int] = None) -> int:
        """Compile the programs images of these (H, W) sizes run (`program_shapes`) that are
        not compiled yet, in parallel threads: XLA compiles a program on one core, and a
        folder's programs are known from its headers. Returns how many failed to compile;
        each is tried again, and its error reported, by the images that need it."""
        shapes = set().union(*(self.program_shapes(h, w) for h, w in sizes))
        todo = {((b, h, w, 3), (b, h, w, 1) if has_mask else None) for b, h, w in shapes}
        todo -= self._programs.keys()
        if not todo:
            return 0
        params = self._params_on_mesh()
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(workers or min(len(todo), os.cpu_count() or 1)) as pool:
            futures = {sig: pool.submit(self._compile, sig, params) for sig in todo}
        failed = 0
        for signature, future in futures.items():
            if future.exception() is not None:
                failed += 1
                continue
            self._programs[signature] = future.result()
            self.compilations += 1
        self.compile_seconds += time.perf_counter() - start
        return failed

    def restore_batch(self, images: Sequence[np.ndarray], masks: Optional[Sequence] = None,
                      names: Optional[Sequence[str]] = None) -> list:
        """HWC [0, 1] images of one `group_of` (and HW1 masks in {0, 1}, 1 = unknown) ->
        their restorations, HWC [0, 1].

        `names` (default "0", "1", ...) key each image's noise; give file names so that an
        image's result does not depend on the others.
        """
        names = [str(i) for i in range(len(images))] if names is None else list(names)
        image_keys = [image_key(self.seed, name) for name in names]
        has_mask = masks is not None
        xs = [np.asarray(im, np.float32) * 2 - 1 for im in images]
        if has_mask:
            xs = [np.concatenate([x, np.asarray(m, np.float32) * 2 - 1], -1)
                  for x, m in zip(xs, masks)]
        sizes = [x.shape[:2] for x in xs]
        if len({self.group_of(*s) for s in sizes}) != 1:
            raise ValueError(f"images of sizes {sorted(set(sizes))} cannot share a batch")
        if max(sizes[0]) > self.chop_size:
            outs = self._tiled(np.stack(xs), has_mask, image_keys)
        else:
            outs = self._untiled(xs, has_mask, image_keys)
        results = []
        for i, out in enumerate(outs):
            out = np.clip(out * 0.5 + 0.5, 0.0, 1.0)
            if has_mask and self.mask_back:
                known = 1.0 - np.asarray(masks[i], np.float32)
                out = out * (1.0 - known) + np.asarray(images[i], np.float32) * known
            results.append(out)
        return results

    def _untiled(self, xs, has_mask, image_keys):
        """Images no larger than the chop, padded to their bucket, `bs` per network call."""
        sizes = [x.shape[:2] for x in xs]
        if self.pad == "bucket":
            side = tiling.bucket_of(max(max(x.shape[:2]) for x in xs), self.buckets)
            xs = [tiling.pad_to_size(x, (side, side))[0] for x in xs]
        keys = [jax.random.fold_in(k, 0) for k in image_keys]
        outs = []
        for b0 in range(0, len(xs), self.bs):
            chunk, chunk_keys = xs[b0:b0 + self.bs], keys[b0:b0 + self.bs]
            fill = self.bs - len(chunk)  # a fixed batch shape: the last batch does not recompile
            out = self._run(np.stack(chunk + chunk[-1:] * fill), has_mask,
                            chunk_keys + chunk_keys[-1:] * fill)
            outs.extend(out[:len(chunk)])
        return [tiling.crop_to(out, size, self.sf) for out, size in zip(outs, sizes)]

    def _tiled(self, x, has_mask, image_keys):
        """Same-size images larger than the chop, cut into tiles fed `chop_bs` at a time."""
        size = x.shape[1:3]
        if self.pad == "bucket":  # every tile the chop's shape
            x, _ = tiling.pad_to_size(x, (max(size[0], self.chop_size), max(size[1], self.chop_size)))

        def tiles_fn(tiles, ids):
            return self._run(tiles, has_mask,
                             [jax.random.fold_in(image_keys[i], tile) for i, tile in ids])

        out = tiling.chop_and_run(x, tiles_fn, chop_size=self.chop_size,
                                  chop_stride=self.chop_stride, sf=self.sf,
                                  batch_size=self.chop_bs, blend=self.blend,
                                  progress=self.progress)
        return list(tiling.crop_to(out, size, self.sf))
