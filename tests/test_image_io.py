"""Image listing, decoding (good and bad files), output naming and masks."""
import struct
import types
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from resshift_jax import image_io
from resshift_jax.image_io import (
    ImageReadError,
    check_mask,
    list_images,
    mask_path_for,
    plan_outputs,
    read_image,
    read_mask,
    write_png,
)

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_list_images_recursive_sorted_filtered(tmp_path):
    for name in ["b.png", "a.JPG", "sub/c.webp", "sub/deeper/d.tiff", "e.bmp"]:
        _save(tmp_path / name, RGB8)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub" / "f.gif").write_bytes(b"GIF89a")
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert got == ["a.JPG", "b.png", "e.bmp", "sub/c.webp", "sub/deeper/d.tiff"]
    assert list_images(tmp_path / "b.png") == [tmp_path / "b.png"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")
    with pytest.raises(ImageReadError, match="notes.txt"):
        list_images(tmp_path / "notes.txt")


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_read_rgb_lossless_formats(tmp_path, ext):
    path = tmp_path / f"x{ext}"
    if ext == ".webp":
        Image.fromarray(RGB8).save(path, lossless=True)
    else:
        _save(path, RGB8)
    rgb, alpha = read_image(path)
    assert rgb.dtype == np.float32 and rgb.shape == (5, 7, 3) and alpha is None
    np.testing.assert_allclose(rgb, RGB8 / 255.0, atol=1e-6)


def test_read_jpeg(tmp_path):
    flat = np.full((16, 16, 3), (200, 100, 50), np.uint8)
    rgb, _ = read_image(_save(tmp_path / "x.jpeg", flat))
    np.testing.assert_allclose(rgb, flat / 255.0, atol=3 / 255)  # RGB order, not BGR


def test_read_gray_becomes_three_channels(tmp_path):
    gray = RGB8[..., 0]
    rgb, alpha = read_image(_save(tmp_path / "g.png", gray, "L"))
    assert rgb.shape == (5, 7, 3) and alpha is None
    for c in range(3):
        np.testing.assert_allclose(rgb[..., c], gray / 255.0, atol=1e-6)


def test_read_rgba_splits_alpha_and_write_reattaches_it(tmp_path):
    rgba = RNG.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    rgb, alpha = read_image(_save(tmp_path / "a.png", rgba, "RGBA"))
    np.testing.assert_allclose(rgb, rgba[..., :3] / 255.0, atol=1e-6)
    np.testing.assert_allclose(alpha, rgba[..., 3] / 255.0, atol=1e-6)
    up = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)
    write_png(tmp_path / "out" / "a.png", up, alpha)  # alpha is resized to 8x12
    back = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert back.shape == (8, 12, 4)
    np.testing.assert_array_equal(back[..., :3], np.round(up * 255).astype(np.uint8))
    write_png(tmp_path / "out" / "dropped.png", up)
    assert np.asarray(Image.open(tmp_path / "out" / "dropped.png")).shape == (8, 12, 3)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_grey_with_alpha_keeps_its_alpha(tmp_path, ext):
    """OpenCV decodes a grey + alpha TIFF as grey alone; the alpha comes from Pillow."""
    la = RNG.integers(0, 256, (4, 6, 2), dtype=np.uint8)
    rgb, alpha = read_image(_save(tmp_path / f"la{ext}", la, "LA"))
    np.testing.assert_allclose(rgb, np.repeat(la[..., :1], 3, axis=2) / 255.0, atol=1e-6)
    np.testing.assert_allclose(alpha, la[..., 1] / 255.0, atol=1e-6)


def test_write_takes_every_name_the_file_system_takes(tmp_path):
    """A 255-byte result name is written (its temporary cannot be `.NAME.tmpPID`), and no
    temporary is left beside it."""
    for name in ("x" * 251 + ".png", "é" * 125 + ".png"):
        write_png(tmp_path / name, np.full((2, 3, 3), 0.5, np.float32))
        assert np.asarray(Image.open(tmp_path / name)).shape == (2, 3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["x" * 251 + ".png", "é" * 125 + ".png"])


def test_read_16bit_png_and_tiff(tmp_path):
    deep = RNG.integers(0, 65536, (3, 4, 3), dtype=np.uint16)
    for ext in (".png", ".tif"):
        path = tmp_path / f"d{ext}"
        assert cv2.imwrite(str(path), deep[:, :, ::-1])  # OpenCV writes BGR
        rgb, _ = read_image(path)
        np.testing.assert_allclose(rgb, deep / 65535.0, atol=1e-6)
    gray16 = deep[..., 0]
    assert cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    rgb, _ = read_image(tmp_path / "g16.png")
    np.testing.assert_allclose(rgb[..., 2], gray16 / 65535.0, atol=1e-6)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bad_files(tmp_path):
    good = _save(tmp_path / "good.png", RGB8).read_bytes()
    zero = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))
    return {
        "empty.png": (b"", "empty file"),
        "truncated.png": (good[: len(good) // 2], "truncated"),
        "text.png": (b"this is not an image\n", "not a recognised image"),
        "zero.png": (zero, "zero-sized"),
        "garbage.jpg": (b"\xff\xd8\xff" + bytes(50), "image"),
    }


def test_bad_files_raise_one_clear_error(tmp_path):
    for name, (data, reason) in _bad_files(tmp_path).items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        message = str(err.value)
        assert str(path) in message and reason in message and "\n" not in message
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_opencv_silenced_on_opencv_4_and_5(monkeypatch):
    """OpenCV 5 (on the GPU image, not our pin) moved setLogLevel into cv2.utils.logging."""
    calls = []
    monkeypatch.setattr(cv2, "setLogLevel", calls.append, raising=False)
    image_io._silence_opencv()
    monkeypatch.delattr(cv2, "setLogLevel")
    logging = types.SimpleNamespace(LOG_LEVEL_SILENT=0, setLogLevel=lambda level: calls.append(
        ("utils", level)))
    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace(logging=logging), raising=False)
    image_io._silence_opencv()
    assert calls == [0, ("utils", 0)]


def test_plan_outputs_keeps_structure_and_refuses_danger(tmp_path):
    src = tmp_path / "in"
    inputs = [_save(src / "a.jpg", RGB8), _save(src / "sub" / "b.bmp", RGB8)]
    out = tmp_path / "out"
    plan, clashes = plan_outputs(inputs, src, out)
    assert plan == {inputs[0]: out / "a.png", inputs[1]: out / "sub" / "b.png"} and not clashes
    assert plan_outputs(inputs[:1], inputs[0], out) == ({inputs[0]: out / "a.png"}, {})
    with pytest.raises(ValueError, match="input folder"):
        plan_outputs(inputs, src, src)
    with pytest.raises(ValueError, match="input folder"):
        plan_outputs(inputs[:1], inputs[0], src / ".")
    with pytest.raises(ValueError, match="overwrite"):  # output folder holding the inputs
        plan_outputs([inputs[1], _save(src / "sub" / "sub" / "b.png", RGB8)], src, src / "sub")
    plan, clashes = plan_outputs(inputs + [_save(src / "a.png", RGB8)], src, out)
    assert plan == {inputs[0]: out / "a.png", inputs[1]: out / "sub" / "b.png"}
    assert list(clashes) == [src / "a.png"] and str(inputs[0]) in clashes[src / "a.png"]


def test_mask_helpers(tmp_path):
    image = _save(tmp_path / "img" / "x.png", RGB8)
    mask = (RGB8[..., 0] > 128).astype(np.uint8) * 255
    mpath = mask_path_for(image, tmp_path / "img", tmp_path / "masks")
    assert mpath == tmp_path / "masks" / "x.png"
    _save(mpath, mask, "L")
    m = read_mask(mpath)
    assert m.shape == (5, 7) and set(np.unique(m)) <= {0.0, 1.0}
    check_mask(m, read_image(image)[0], mpath, image)
    with pytest.raises(ValueError, match=r"4x7 \(HxW\).*5x7"):
        check_mask(m[:4], read_image(image)[0], mpath, image)
    with pytest.raises(ImageReadError, match="colour"):
        read_mask(_save(tmp_path / "colour.png", RGB8))
