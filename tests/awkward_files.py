"""Builders of awkward image files for the fault-injection tests: good files in odd modes,
sizes and names, and bad ones (corrupt, truncated, empty, not images, absurd headers, links).

`build(root)` writes a folder and returns what a correct reader makes of it: for each good
file its (width, height, PIL mode of the result), and the set of bad file names.
"""
import hashlib
import io
import os
import pathlib
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

RNG_SEED = 0
FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "webp": "WEBP", "tif": "TIFF"}


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header (valid CRC) claiming width x height, with almost no data."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


def tiff_claiming(data: bytes, width: int, height: int) -> bytes:
    """A little-endian classic TIFF with its first directory's width and height replaced."""
    out = bytearray(data)
    assert out[:4] == b"II*\0"
    (ifd,) = struct.unpack("<I", out[4:8])
    (count,) = struct.unpack("<H", out[ifd:ifd + 2])
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, kind = struct.unpack("<HH", out[at:at + 4])
        if tag in (256, 257):
            fmt = {3: "<H", 4: "<I"}[kind]
            out[at + 8:at + 8 + struct.calcsize(fmt)] = struct.pack(fmt, width if tag == 256 else height)
    return bytes(out)


def _cv2_encode(ext: str, array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, array)
    assert ok
    return buf.tobytes()


def build(root: pathlib.Path, outside: pathlib.Path):
    """Write the awkward folder under `root` (and a link target under `outside`).

    `big_output.png` is a readable image that is bad only for a job whose
    --max_output_megapixels it exceeds at x4 (any limit under 4.8 MP).
    """
    rng = np.random.default_rng(RNG_SEED)
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)

    def rgb(h, w):
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8))

    files, good, bad = {}, {}, set()
    for ext, fmt in FORMATS.items():
        data = encode(rgb(10, 12), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        files[f"rgb_{ext}.{ext}"] = data
        good[f"rgb_{ext}.{ext}"] = (12, 10, "RGB")
        corrupt = bytearray(data)
        corrupt[16:56] = rng.integers(0, 256, 40, np.uint8).tobytes()
        files[f"corrupt_{ext}.{ext}"] = bytes(corrupt)
        files[f"truncated_{ext}.{ext}"] = data[: len(data) // 2]
        bad |= {f"corrupt_{ext}.{ext}", f"truncated_{ext}.{ext}"}

    modes = {
        "palette.png": (encode(rgb(9, 11).convert("P"), "PNG"), "RGB"),
        "palette_alpha.png": (encode(rgb(9, 11).convert("P"), "PNG", transparency=0), "RGBA"),
        "bilevel.png": (encode(rgb(9, 11).convert("1"), "PNG"), "RGB"),
        "gray_alpha.png": (encode(rgb(9, 11).convert("LA"), "PNG"), "RGBA"),
        "rgba.webp": (encode(Image.fromarray(rng.integers(0, 256, (9, 11, 4), np.uint8)), "WEBP",
                             lossless=True), "RGBA"),
        "deep16.png": (_cv2_encode(".png", rng.integers(0, 65536, (9, 11, 3)).astype(np.uint16)), "RGB"),
        "gray16.tif": (_cv2_encode(".tif", rng.integers(0, 65536, (9, 11)).astype(np.uint16)), "RGB"),
        "cmyk_jpg.jpg": (encode(rgb(9, 11).convert("CMYK"), "JPEG"), "RGB"),
        "cmyk_tif.tif": (encode(rgb(9, 11).convert("CMYK"), "TIFF"), "RGB"),
        "float_gray.tif": (encode(Image.fromarray(rng.random((9, 11)).astype(np.float32), "F"), "TIFF"),
                           "RGB"),
        "float_rgb.tif": (_cv2_encode(".tif", rng.random((9, 11, 3)).astype(np.float32)), "RGB"),
        "pages.tif": (encode(rgb(9, 11), "TIFF", save_all=True, append_images=[rgb(40, 40)]), "RGB"),
    }
    for name, (data, mode) in modes.items():
        files[name], good[name] = data, (11, 9, mode)
    for name, (h, w) in {"one.png": (1, 1), "two_by_three.bmp": (2, 3), "odd.png": (17, 33),
                         "UPPER.PNG": (8, 8), "Mixed.JpEg": (8, 8), "café ünï 日本.png": (5, 6),
                         "sub/deeper/nested.tif": (6, 5)}.items():
        fmt = {".png": "PNG", ".bmp": "BMP", ".jpeg": "JPEG", ".tif": "TIFF"}[pathlib.Path(name).suffix.lower()]
        files[name], good[name] = encode(rgb(h, w), fmt), (w, h, "RGB")
    files[os.fsdecode(b"latin1_\xe9.png")] = encode(rgb(4, 7), "PNG")  # not valid UTF-8
    good[os.fsdecode(b"latin1_\xe9.png")] = (7, 4, "RGB")

    float_tif = _cv2_encode(".tif", np.zeros((4, 4, 3), np.float32))
    files.update({
        "empty.png": b"",
        "text.jpg": b"this is not an image\n",
        "page.tif": b"<html><body>not found</body></html>",
        "zero.png": (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")),
        "absurd_png.png": png_claiming(100_000, 100_000),
        "absurd_tif.tif": tiff_claiming(encode(rgb(4, 4), "TIFF"), 60_000, 60_000),
        "absurd_float.tif": tiff_claiming(float_tif, 40_000, 40_000),
        "bomb_warning.png": png_claiming(12_000, 10_000),  # Pillow warns, does not refuse
        "big_output.png": encode(Image.new("RGB", (600, 500)), "PNG"),  # a real image, too large at x4
    })
    bad |= {"empty.png", "text.jpg", "page.tif", "zero.png", "absurd_png.png", "absurd_tif.tif",
            "absurd_float.tif", "bomb_warning.png", "big_output.png", "dangling.png"}

    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (outside / "target.png").write_bytes(encode(rgb(6, 6), "PNG"))
    (root / "link.png").symlink_to("rgb_png.png")
    (root / "outside_link.png").symlink_to(outside / "target.png")
    (root / "dangling.png").symlink_to("nowhere.png")
    good.update({"link.png": (12, 10, "RGB"), "outside_link.png": (6, 6, "RGB")})
    return good, bad


def snapshot(*roots) -> dict:
    """Every entry under `roots`: sha256 and size of files, targets of links."""
    state = {}
    for root in roots:
        for path in sorted(pathlib.Path(root).rglob("*")):
            if path.is_symlink():
                state[path] = ("link", os.readlink(path))
            elif path.is_file():
                state[path] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
            else:
                state[path] = ("dir",)
    return state
