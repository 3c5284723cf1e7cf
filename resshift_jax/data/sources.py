"""Random-access image sources: folders, path lists, tensorflow-datasets, scikit-image photos.

Each source has `len()` and `read(i) -> uint8 HxWx3 RGB`. Every failure to read one item
(missing, unreadable, corrupt, truncated, a header over `image_io.MAX_PIXELS`, any decoder
error) raises `image_io.ImageReadError` naming it, and nothing else, so the pipeline can
skip exactly that item; a misconfigured source fails when it is built or at its first read.
Several sources concatenate into one index space.
"""
import bisect
import pathlib
from typing import List, Sequence

import numpy as np

from resshift_jax import image_io


def _to_uint8_rgb(rgb01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb01, 0, 1) * 255).astype(np.uint8)


class DataError(ValueError):
    """Training data that cannot be used (no such folder, no images, an unknown source or
    transform, only unreadable files); the message names it."""


class FileSource:
    """Image files from a folder (recursive, extension filter) or a text file of paths."""

    def __init__(self, paths: Sequence[pathlib.Path], origin: str):
        self.paths, self.origin = list(paths), origin

    @classmethod
    def folder(cls, root, exts=None):
        root = pathlib.Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: image folder does not exist")
        paths = image_io.list_images(root)
        if exts:
            paths = [p for p in paths if p.suffix.lower().lstrip(".") in {e.lower() for e in exts}]
        return cls(paths, str(root))

    @classmethod
    def text_list(cls, path):
        path = pathlib.Path(path)
        if not path.is_file():
            raise DataError(f"{path}: path list does not exist")
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        return cls([path.parent / ln for ln in lines], str(path))

    def __len__(self):
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        rgb, _ = image_io.read_image(self.paths[i])
        return _to_uint8_rgb(rgb)


class SkimageSource:
    """scikit-image's bundled sample photographs (offline; used by the demo)."""

    def __init__(self, names: Sequence[str]):
        from skimage import data
        self.names = list(names)
        self.images = []
        for name in self.names:
            img = getattr(data, name)()
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=-1)
            self.images.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
        self.origin = f"skimage:{','.join(self.names)}"

    def __len__(self):
        return len(self.images)

    def read(self, i: int) -> np.ndarray:
        return self.images[i]


class TfdsSource:
    """A tensorflow-datasets split with an encoded image feature, read by index.

    Read with `tfds.data_source` (array_record files), the image bytes left undecoded by
    tfds and decoded like image files (`image_io`): any channel count, 16-bit scaled, and
    a corrupt record raises `ImageReadError`, so the pipeline skips it like a bad file.
    """

    def __init__(self, name: str, split: str = "train", data_dir=None, image_key: str = "image"):
        import tensorflow_datasets as tfds
        self.data = tfds.data_source(name, split=split, data_dir=data_dir,
                                     decoders={image_key: tfds.decode.SkipDecoding()})
        self.image_key, self.origin = image_key, f"tfds:{name}/{split}"

    def __len__(self):
        return len(self.data)

    def read(self, i: int) -> np.ndarray:
        try:
            data = self.data[i][self.image_key]
        except Exception as err:  # noqa: BLE001 -- a record that cannot be read is this item's
            raise image_io.ImageReadError(f"{self.origin}[{i}]", "cannot read the record "
                                          f"({image_io.error_line(err)})") from None
        if not isinstance(data, bytes):
            raise TypeError(f"{self.origin}: feature {self.image_key!r} is not an encoded image")
        rgb, _ = image_io.decode_image(data, f"{self.origin}[{i}]")
        return _to_uint8_rgb(rgb)


class Concat:
    def __init__(self, sources: List):
        self.sources = sources
        self.offsets = np.cumsum([0] + [len(s) for s in sources]).tolist()
        if self.offsets[-1] == 0:
            raise DataError("no training images in " + ", ".join(s.origin for s in sources))

    def __len__(self):
        return self.offsets[-1]

    def read(self, i: int) -> np.ndarray:
        k = bisect.bisect_right(self.offsets, i) - 1
        return self.sources[k].read(i - self.offsets[k])


def make_source(specs) -> Concat:
    """Sources from config dicts: {type: folder|txt|tfds|skimage, ...}."""
    built = []
    for spec in specs:
        spec = dict(spec)
        kind = spec.pop("type")
        if kind == "folder":
            built.append(FileSource.folder(spec["root"], spec.get("exts")))
        elif kind == "txt":
            built.append(FileSource.text_list(spec["path"]))
        elif kind == "tfds":
            built.append(TfdsSource(spec["name"], spec.get("split", "train"), spec.get("data_dir"),
                                    spec.get("image_key", "image")))
        elif kind == "skimage":
            built.append(SkimageSource(spec["names"]))
        else:
            raise DataError(f"unknown data source type {kind!r} (folder, txt, tfds, skimage)")
    return Concat(built)
