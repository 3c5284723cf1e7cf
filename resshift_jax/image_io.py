"""Reading users' images and writing results: listing, decoding, output naming, masks.

Images are float32 HWC RGB in [0, 1]. Decoding is OpenCV's `IMREAD_UNCHANGED`, as in the
reference (so EXIF orientation is ignored, as there). Alpha is split off and returned
separately: the model only sees RGB, and `write_png` re-attaches the alpha (resized to
the result) when given one; pass `alpha=None` to drop it.
"""
import io
import os
import struct
from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageReadError(ValueError):
    """An input file that cannot be used as an image; the message names file and problem."""


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(path) -> list[Path]:
    """The image files at `path`: the file itself, or a folder's images, recursively, sorted."""
    path = Path(path)
    if path.is_file():
        if not _is_image_name(path):
            raise ImageReadError(f"{path}: not an image file name (expected one of "
                                 f"{', '.join(IMAGE_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"input path does not exist: {path}")
    return sorted(p for p in path.rglob("*") if p.is_file() and _is_image_name(p))


def _why_undecodable(data: bytes) -> str:
    """A reason for a decoding failure, asked of Pillow (whose errors say more than OpenCV's)."""
    if data[:8] == _PNG_SIGNATURE and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        if width == 0 or height == 0:
            return f"zero-sized image ({width}x{height})"
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except UnidentifiedImageError:
        return "not a recognised image format"
    except (OSError, ValueError, SyntaxError) as err:
        return f"corrupt or truncated image ({err})"
    return "image format or pixel layout not supported"


def _to_unit_float(raw: np.ndarray, path) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0
    if raw.dtype == np.float32:
        return np.clip(raw, 0.0, 1.0)
    raise ImageReadError(f"{path}: unsupported pixel type {raw.dtype}")


def read_image(path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Read `path` as `(rgb, alpha)`: float32 HxWx3 in [0,1], and HxW alpha or None.

    Grayscale becomes 3 equal channels; 16-bit files are scaled by 65535. Any problem
    (missing, empty, corrupt, truncated, not an image, zero-sized) raises `ImageReadError`.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read file ({err.strerror or err})") from None
    return decode_image(data, path)


def decode_image(data: bytes, origin) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """`read_image` for an encoded image in memory; `origin` names it in errors."""
    if not data:
        raise ImageReadError(f"{origin}: empty file")
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ImageReadError(f"{origin}: {_why_undecodable(data)}")
    if raw.size == 0:
        raise ImageReadError(f"{origin}: zero-sized image {raw.shape}")
    img = _to_unit_float(raw, origin)
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        return np.repeat(img, 3, axis=2), None
    if channels == 3:
        return np.ascontiguousarray(img[:, :, ::-1]), None
    if channels == 4:
        return np.ascontiguousarray(img[:, :, 2::-1]), np.ascontiguousarray(img[:, :, 3])
    raise ImageReadError(f"{origin}: unsupported channel count {channels}")


def read_mask(path) -> np.ndarray:
    """Read an inpainting mask as float32 HxW in [0,1] (1 = region to fill).

    A colour file is accepted only when its channels are equal (a gray image saved as RGB).
    """
    rgb, _ = read_image(path)
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise ImageReadError(f"{path}: a mask must be grayscale, this file has colour")
    return rgb[..., 0]


def check_mask(mask: np.ndarray, image: np.ndarray, mask_path, image_path) -> None:
    """Raise ValueError unless `mask` (HxW) has the spatial size of `image` (HxWxC)."""
    if mask.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} (HxW) but image {image_path} "
            f"is {image.shape[0]}x{image.shape[1]}: they must be the same size"
        )


def _relative(path: Path, input_root: Path) -> Path:
    return Path(path.name) if input_root.is_file() else path.relative_to(input_root)


def mask_path_for(image_path, input_root, mask_root) -> Path:
    """The mask of an image: same relative path (so same name, as the reference) under `mask_root`."""
    return Path(mask_root) / _relative(Path(image_path), Path(input_root))


def plan_outputs(inputs: Iterable, input_root, output_dir) -> dict[Path, Path]:
    """Map each input to its PNG result under `output_dir`, keeping sub-folders.

    Refuses (ValueError) an output folder equal to the input folder, a result that would
    overwrite an input file, and two inputs mapping to one result (`a.jpg`, `a.png`).
    """
    input_root, output_dir = Path(input_root), Path(output_dir)
    in_dir = input_root if input_root.is_dir() else input_root.parent
    if output_dir.resolve() == in_dir.resolve():
        raise ValueError(f"output folder {output_dir} is the input folder; choose another one")
    inputs = [Path(p) for p in inputs]
    resolved_inputs = {p.resolve() for p in inputs}
    plan: dict[Path, Path] = {}
    claimed: dict[Path, Path] = {}
    for src in inputs:
        dst = output_dir / _relative(src, input_root).with_suffix(".png")
        key = dst.resolve()
        if key in resolved_inputs:
            raise ValueError(f"result {dst} would overwrite the input file {src}")
        if key in claimed:
            raise ValueError(f"inputs {claimed[key]} and {src} would both be written to {dst}")
        claimed[key] = src
        plan[src] = dst
    return plan


def write_png(path, rgb: np.ndarray, alpha: Optional[np.ndarray] = None) -> None:
    """Write float HxWx3 RGB in [0,1] as an 8-bit PNG, creating folders; written atomically.

    `alpha` (HxW in [0,1], any size) is resized bicubically to the image and attached.
    """
    path = Path(path)
    img = np.clip(np.asarray(rgb, np.float32), 0.0, 1.0)[:, :, ::-1]
    if alpha is not None:
        alpha = np.asarray(alpha, np.float32)
        if alpha.shape != img.shape[:2]:
            size = (img.shape[1], img.shape[0])
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC)
        img = np.concatenate([img, np.clip(alpha, 0.0, 1.0)[:, :, None]], axis=2)
    ok, buf = cv2.imencode(".png", np.round(img * 255.0).astype(np.uint8))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
