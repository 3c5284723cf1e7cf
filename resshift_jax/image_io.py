"""Reading users' images and writing results: listing, sizing, decoding, output naming, masks.

Images are float32 HWC RGB in [0, 1]. Every read is two steps: the size is taken from the
file's header (Pillow's lazy open, or the first TIFF directory for TIFFs only OpenCV
reads) and checked against a pixel limit before any pixel is decoded; then OpenCV decodes
with `IMREAD_UNCHANGED`, as the reference does (so EXIF orientation is ignored, as there).
Every failure of a read — a missing or unreadable file, a header that cannot be sized, a
size over the limit, any decoder error — raises `ImageReadError` with a one-line message
naming the file; nothing else escapes. OpenCV's own log lines are silenced for the same
reason (its failures are reported here). Alpha is split off and returned separately: the
model only sees RGB, and `write_png` re-attaches the alpha (resized to the result) when
given one; pass `alpha=None` to drop it.
"""
import hashlib
import io
import os
import re
import struct
import threading
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Optional

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb threshold: 89.5 MP, ~1 GB as float32 RGB


def _silence_opencv() -> None:
    """Keep OpenCV's own messages out: a bad file is reported once, by us."""
    if hasattr(cv2, "setLogLevel"):  # OpenCV 4
        cv2.setLogLevel(0)
    else:  # OpenCV 5 moved it (the GPU image's OpenCV is not our pin)
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


_silence_opencv()

_WARNINGS_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide state


class ImageReadError(ValueError):
    """An input that cannot be used as an image; `str()` is "origin: reason", one line.

    Raised as `ImageReadError(origin, reason)`, or with the whole message alone.
    """

    def __init__(self, origin, reason: Optional[str] = None):
        if reason is None:
            origin, _, reason = str(origin).partition(": ")
        self.origin, self.reason = str(origin), reason
        super().__init__(f"{origin}: {reason}" if reason else origin)


class ImageTooLarge(ImageReadError):
    """A header whose pixel count is over the limit; refused before any pixel is decoded."""

    def __init__(self, origin, reason: str, pixels: int):
        self.pixels = pixels
        super().__init__(origin, reason)


def error_line(err: BaseException) -> str:
    """`Type: first line of the message`, at most 300 characters: a reason for one line."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(path) -> list[Path]:
    """The image files at `path`: the file itself, or a folder's images, recursively, sorted.

    A broken symbolic link with an image name is listed too, so that it is reported by name
    rather than silently missing.
    """
    path = Path(path)
    if path.is_file():
        if not _is_image_name(path):
            raise ImageReadError(path, "not an image file name (expected one of "
                                       f"{', '.join(IMAGE_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"input path does not exist: {path}")
    return sorted(p for p in path.rglob("*") if _is_image_name(p)
                  and (p.is_file() or (p.is_symlink() and not p.exists())))


def _header_size(f: BinaryIO):
    """(H, W) from a PNG's IHDR or the first directory of a classic or Big TIFF, for files
    Pillow cannot open (zero-sized PNGs, multi-channel float TIFFs); None otherwise."""
    f.seek(0)
    head = f.read(33)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) == 33:
        if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
            return None  # a damaged header: its sizes mean nothing
        width, height = struct.unpack(">II", head[16:24])
        return height, width
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or len(head) < 8:
        return None
    magic = struct.unpack(order + "H", head[2:4])[0]
    if magic == 42:
        offset, count_fmt, entry_fmt = struct.unpack(order + "I", head[4:8])[0], "H", "HHI4s"
    elif magic == 43 and len(head) >= 16:
        offset, count_fmt, entry_fmt = struct.unpack(order + "Q", head[8:16])[0], "Q", "HHQ8s"
    else:
        return None
    f.seek(offset)
    raw = f.read(struct.calcsize(order + count_fmt))
    if len(raw) != struct.calcsize(order + count_fmt):
        return None
    size, dims = struct.calcsize(order + entry_fmt), {}
    for _ in range(min(struct.unpack(order + count_fmt, raw)[0], 4096)):
        entry = f.read(size)
        if len(entry) != size:
            return None
        tag, kind, _, value = struct.unpack(order + entry_fmt, entry)
        if tag in (256, 257) and kind in (3, 4, 16):  # ImageWidth, ImageLength: SHORT/LONG/LONG8
            fmt = {3: "H", 4: "I", 16: "Q"}[kind]
            dims[tag] = struct.unpack(order + fmt, value[:struct.calcsize(fmt)])[0]
    return (dims[257], dims[256]) if len(dims) == 2 else None


def _bomb_pixels(err: Exception) -> int:
    found = re.search(r"\((\d+) pixels\)", str(err))
    return int(found.group(1)) if found else 0


def _refuse(origin, pixels: int, max_pixels: int, size: str = "") -> ImageTooLarge:
    return ImageTooLarge(origin, f"refused: the header gives {size}{pixels:,} pixels, over the "
                                 f"limit of {max_pixels:,} ({max_pixels / 1e6:.3g} MP)", pixels)


def _probe_stream(f: BinaryIO, origin, max_pixels: int) -> tuple[int, int, str]:
    """(H, W, mode) of an open image file, from its header; raises ImageReadError."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the size is checked below; bad tags fail later
            with Image.open(f) as im:
                (width, height), mode = im.size, im.mode
    except Image.DecompressionBombError as err:  # over twice Pillow's limit: no size is kept
        raise _refuse(origin, _bomb_pixels(err), max_pixels) from None
    except UnidentifiedImageError:
        size = _header_size(f)
        if size is None:
            raise ImageReadError(origin, "not a recognised image format") from None
        (height, width), mode = size, "raw header"
    except Exception as err:  # any decoder failure on the header is this file's failure
        raise ImageReadError(origin, f"corrupt image header ({error_line(err)})") from None
    if width <= 0 or height <= 0:
        raise ImageReadError(origin, f"zero-sized image ({width}x{height})")
    if width * height > max_pixels:
        raise _refuse(origin, width * height, max_pixels, f"{width}x{height} = ")
    return height, width, mode


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as err:
        if path.is_symlink() and not path.exists():
            raise ImageReadError(path, f"broken symbolic link (to {os.readlink(path)})") from None
        raise ImageReadError(path, f"cannot read file ({err.strerror or err})") from None


def _contained(origin, fn, *args):
    """`fn(*args)`, with any failure other than ImageReadError made one (a file's failure
    is that file's, whatever raised it: an I/O error, MemoryError, a library's own)."""
    try:
        return fn(*args)
    except ImageReadError:
        raise
    except OSError as err:
        raise ImageReadError(origin, f"cannot read file ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001 -- see the docstring
        raise ImageReadError(origin, f"cannot read ({error_line(err)})") from None


def _probe_path(path: Path, max_pixels: int) -> tuple[int, int, str]:
    with _open(path) as f:
        if not f.read(1):
            raise ImageReadError(path, "empty file")
        return _probe_stream(f, path, max_pixels)


def probe(path, max_pixels: int = MAX_PIXELS) -> tuple[int, int, str]:
    """(H, W, Pillow's mode or "raw header") from the header alone; raises `ImageReadError`,
    and `ImageTooLarge` for more than `max_pixels` pixels (nothing is decoded or allocated)."""
    return _contained(path, _probe_path, Path(path), max_pixels)


def _why_undecodable(data: bytes) -> str:
    """A reason for an OpenCV decoding failure, asked of Pillow (whose errors say more)."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                im.load()
    except UnidentifiedImageError as err:
        return ("neither OpenCV nor Pillow can decode it: corrupt, or a pixel layout neither "
                f"reads ({error_line(err)})")
    except Exception as err:  # the reason is all that is wanted here
        return f"corrupt or truncated image ({error_line(err)})"
    return "image format or pixel layout not supported by OpenCV"


def _pillow_alpha(data: bytes) -> Optional[np.ndarray]:
    """The alpha of a grey + alpha file whose alpha OpenCV drops (TIFF), by Pillow, or None."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im.getchannel("A"), np.float32) / 255.0
    except Exception:  # noqa: BLE001 -- no alpha to keep, as OpenCV decided
        return None


def _to_unit_float(raw: np.ndarray, origin) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0
    if raw.dtype in (np.float32, np.float64):
        return np.clip(np.nan_to_num(raw.astype(np.float32)), 0.0, 1.0)
    raise ImageReadError(origin, f"unsupported pixel type {raw.dtype}")


def read_image(path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Read `path` as `(rgb, alpha)`: float32 HxWx3 in [0,1], and HxW alpha or None.

    Grayscale becomes 3 equal channels; 16-bit files are scaled by 65535, float ones
    clipped. Any problem raises `ImageReadError`, and nothing else does (`ImageTooLarge`
    over `max_pixels`, found from the header before decoding).
    """
    return _contained(path, _read_path, Path(path), max_pixels)


def _read_path(path: Path, max_pixels: int):
    with _open(path) as f:
        if not f.read(1):
            raise ImageReadError(path, "empty file")
        mode = _probe_stream(f, path, max_pixels)[2]
        f.seek(0)
        data = f.read()
    return _decode(data, path, mode)


def decode_image(data: bytes, origin, max_pixels: int = MAX_PIXELS):
    """`read_image` for an encoded image in memory; `origin` names it in errors."""
    return _contained(origin, _decode_bytes, data, origin, max_pixels)


def _decode_bytes(data: bytes, origin, max_pixels: int):
    if not data:
        raise ImageReadError(origin, "empty file")
    mode = _probe_stream(io.BytesIO(data), origin, max_pixels)[2]
    return _decode(data, origin, mode)


def _decode(data: bytes, origin, mode: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """OpenCV's decoding of a header-checked image; every failure is an ImageReadError."""
    try:
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):
            raise ImageReadError(origin, "refused: over OpenCV's pixel limit "
                                         "(CV_IO_MAX_IMAGE_PIXELS)") from None
        raise ImageReadError(origin, f"OpenCV cannot decode it ({error_line(err)})") from None
    if raw is None:
        raise ImageReadError(origin, _why_undecodable(data))
    if raw.size == 0:
        raise ImageReadError(origin, f"zero-sized image {raw.shape}")
    img = _to_unit_float(raw, origin)
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        alpha = _pillow_alpha(data) if mode == "LA" else None
        if alpha is not None and alpha.shape != img.shape[:2]:
            alpha = None
        return np.repeat(img, 3, axis=2), alpha
    if channels == 3:
        return np.ascontiguousarray(img[:, :, ::-1]), None
    if channels == 4:  # OpenCV gives CMYK as BGR plus an opaque alpha: drop that one
        alpha = None if mode == "CMYK" else np.ascontiguousarray(img[:, :, 3])
        return np.ascontiguousarray(img[:, :, 2::-1]), alpha
    raise ImageReadError(origin, f"unsupported channel count {channels}")


def read_mask(path) -> np.ndarray:
    """Read an inpainting mask as float32 HxW in [0,1] (1 = region to fill).

    A colour file is accepted only when its channels are equal (a gray image saved as RGB).
    """
    rgb, _ = read_image(path)
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise ImageReadError(path, "a mask must be grayscale, this file has colour")
    return rgb[..., 0]


def check_mask(mask: np.ndarray, image: np.ndarray, mask_path, image_path) -> None:
    """Raise ImageReadError (a ValueError) unless `mask` (HxW) has the size of `image` (HxWxC)."""
    if mask.shape[:2] != image.shape[:2]:
        raise ImageReadError(
            f"mask {mask_path}", f"{mask.shape[0]}x{mask.shape[1]} (HxW) but image {image_path} "
            f"is {image.shape[0]}x{image.shape[1]}: they must be the same size")


def _relative(path: Path, input_root: Path) -> Path:
    return Path(path.name) if input_root.is_file() else path.relative_to(input_root)


def mask_path_for(image_path, input_root, mask_root) -> Path:
    """The mask of an image: same relative path (so same name, as the reference) under `mask_root`."""
    return Path(mask_root) / _relative(Path(image_path), Path(input_root))


def plan_outputs(inputs: Iterable, input_root, output_dir) -> tuple[dict, dict]:
    """({input: its PNG result under `output_dir`, keeping sub-folders}, {input: why it has
    none}): of inputs mapping to one result (`a.jpg`, `a.png`) the first listed keeps it.

    Refuses (ValueError) an output folder equal to the input folder, and a result that would
    overwrite an input file.
    """
    input_root, output_dir = Path(input_root), Path(output_dir)
    in_dir = input_root if input_root.is_dir() else input_root.parent
    if output_dir.resolve() == in_dir.resolve():
        raise ValueError(f"output folder {output_dir} is the input folder; choose another one")
    inputs = [Path(p) for p in inputs]
    resolved_inputs = {p.resolve() for p in inputs}
    plan: dict[Path, Path] = {}
    claimed: dict[Path, Path] = {}
    clashes: dict[Path, str] = {}
    for src in inputs:
        dst = output_dir / _relative(src, input_root).with_suffix(".png")
        key = dst.resolve()
        if key in resolved_inputs:
            raise ValueError(f"result {dst} would overwrite the input file {src}")
        if key in claimed:
            clashes[src] = (f"its result {dst} is {claimed[key]}'s; rename one of them "
                            "(results are PNGs named as their input)")
            continue
        claimed[key] = src
        plan[src] = dst
    return plan, clashes


def _temporary_beside(path: Path) -> Path:
    """A hidden temporary name in `path`'s folder: `.NAME.tmpPID`, or a digest of NAME where
    that would pass the file systems' 255-byte limit on a name (which NAME itself meets)."""
    name = f".{path.name}.tmp{os.getpid()}"
    if len(os.fsencode(name)) > 255:
        name = f".{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:32]}.tmp{os.getpid()}"
    return path.with_name(name)


def write_png(path, rgb: np.ndarray, alpha: Optional[np.ndarray] = None) -> None:
    """Write float HxWx3 RGB in [0,1] as an 8-bit PNG, creating folders.

    Written atomically (a hidden temporary file, flushed to disk, renamed over `path`), so a
    run killed mid-write never leaves a partial PNG that a rerun would take as done.
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
    tmp = _temporary_beside(path)
    try:
        with tmp.open("wb") as f:
            f.write(buf.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
