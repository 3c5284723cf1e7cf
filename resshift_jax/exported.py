"""Restore images with the programs `python -m resshift_jax.export` wrote: jax and numpy only.

    from resshift_jax.exported import ExportedRestorer
    restorer = ExportedRestorer.load("DIR")
    out = restorer(image, name="photo.png")  # HWC [0, 1] -> HWC [0, 1], sf times larger

No model code is imported (nor flax): the programs are deserialized StableHLO, compiled
for the platform at hand on first use, and fed the weights file as arguments. An image no
larger than the programs' size is reflect-padded to it; a larger one is cut into
overlapping tiles of that size (`resshift_jax.tiling`, numpy only), run `batch` tiles at
a time through the smallest program that holds them, and blended. Noise keys are
`noise_keys.image_key`'s (seed, name, tile index), drawn on the manifest's noise canvas, so
an image that fits one tile comes out as `sample.py --pad reference` makes it at the
`--chop_size` exported for.
"""
import dataclasses
import json
import pathlib
from typing import Callable, Optional

import jax
import numpy as np

from resshift_jax import tiling
from resshift_jax.noise_keys import image_key

FORMAT = 1


def _error(path, problem: str):
    return ValueError(f"{path}: {problem}")


@dataclasses.dataclass
class ExportedRestorer:
    """Callable HWC [0, 1] image (+ HW1 mask in {0, 1}, 1 = unknown) -> restored image."""
    manifest: dict
    programs: dict  # batch size -> jitted exported call
    weights: dict
    batch: int = 1
    progress: Optional[Callable[[int, int], None]] = None

    @classmethod
    def load(cls, folder, *, batch: Optional[int] = None, device=None):
        """Read `folder`'s manifest, programs and weights (weights placed on `device`)."""
        import safetensors.numpy
        folder = pathlib.Path(folder)
        path = folder / "manifest.json"
        if not path.is_file():
            raise _error(folder, "no manifest.json: not a resshift_jax.export folder")
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT:
            raise _error(path, f"format {manifest.get('format')!r}, this loader reads {FORMAT}")
        programs = {}
        for size, name in manifest["programs"].items():
            file = folder / name
            if not file.is_file():
                raise _error(file, "program file missing")
            programs[int(size)] = jax.jit(jax.export.deserialize(bytearray(file.read_bytes())).call)
        weights_file = folder / manifest["weights"]
        if not weights_file.is_file():
            raise _error(weights_file, "weights file missing")
        weights = jax.device_put(safetensors.numpy.load_file(str(weights_file)), device)
        return cls(manifest, programs, weights, batch or min(programs))

    @property
    def sf(self) -> int:
        return int(self.manifest["sf"])

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    def image_key(self, name: str):
        """The key of image `name`, as sample.py's (`noise_keys.image_key`)."""
        return image_key(int(self.manifest["seed"]), name)

    def run(self, lq: np.ndarray, key_data: np.ndarray, mask=None) -> np.ndarray:
        """(N, size, size, 3) [-1, 1] -> (N, sf size, sf size, 3) through the smallest
        program of at least N examples (the batch padded by repeating its last example)."""
        n = len(lq)
        fits = [b for b in self.programs if b >= n]
        if not fits:
            raise ValueError(f"batch {n} larger than every exported batch {sorted(self.programs)}")
        batch = min(fits)
        pad = [n - 1] * (batch - n)

        def take(x):
            return np.concatenate([x, x[pad]]) if pad else x
        args = [self.weights, take(lq).astype(np.float32), take(key_data)]
        if self.manifest["has_mask"]:
            args.append(take(mask).astype(np.float32))
        return np.asarray(self.programs[batch](*args))[:n]

    def __call__(self, image: np.ndarray, mask: Optional[np.ndarray] = None,
                 name: str = "0") -> np.ndarray:
        has_mask = bool(self.manifest["has_mask"])
        if has_mask != (mask is not None):
            raise ValueError("this model needs a mask" if has_mask else "this model takes no mask")
        image = np.asarray(image, np.float32)
        x = image * 2 - 1
        if has_mask:
            x = np.concatenate([x, np.asarray(mask, np.float32) * 2 - 1], axis=-1)
        key = self.image_key(name)
        size = self.size

        def tiles_fn(tiles, ids):
            padded, hw = tiling.pad_to_multiple(tiles, size)
            key_data = np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(key, t)))
                                 for _, t in ids])
            lq, m = (padded[..., :3], padded[..., 3:]) if has_mask else (padded, None)
            return tiling.crop_to(self.run(lq, key_data, m), hw, self.sf)

        out = tiling.chop_and_run(x, tiles_fn, chop_size=size, chop_stride=self.manifest["stride"],
                                  sf=self.sf, batch_size=self.batch, blend=self.manifest["blend"],
                                  progress=self.progress)
        out = np.clip(out * 0.5 + 0.5, 0.0, 1.0)
        if has_mask and self.manifest["mask_back"]:
            known = 1.0 - np.asarray(mask, np.float32)
            out = out * (1.0 - known) + image * known
        return out
