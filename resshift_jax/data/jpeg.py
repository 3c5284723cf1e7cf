"""The JPEG of the reference's Real-ESRGAN degradation (BasicSR's DiffJPEG, non-differentiable).

Not a codec: a float32 simulation of baseline JPEG that keeps no bitstream. The image is
zero-padded to a multiple of 16, converted to YCbCr (JFIF matrix, chroma shifted by 128),
the chroma averaged over 2x2; each plane is cut into 8x8 blocks, shifted by -128, DCT'd,
divided by the quality-scaled table, rounded half to even, multiplied back, inverse-DCT'd;
chroma is repeated 2x2, converted back to RGB, clamped to [0, 255] and cropped. The
quality is a float (the trainer draws it uniform, not rounded), scaled like libjpeg.
DiffJPEG indexes its tables with horizontal and vertical frequency swapped relative to the
standard (Annex K) layout; that is kept, since it is what the reference trains with.
Differs from OpenCV's JPEG (no integer DCT, no rounding to 8 bits in between, no
chroma smoothing), which is why the reference's own algorithm is used.
"""
import numpy as np

# Annex K tables, rows = vertical frequency; DiffJPEG applies them transposed
_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32).T
_CHROMA = np.full((8, 8), 99, np.float32)
_CHROMA[:4, :4] = np.array([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99],
                            [47, 66, 99, 99]], np.float32).T
_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]], np.float32)
_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], np.float32)
_CHROMA_SHIFT = np.array([0.0, 128.0, 128.0], np.float32)


def _dct_matrices():
    """64x64 float32 (forward, inverse) DCT-II basis products, as one matmul each."""
    k = np.arange(8)
    cos = np.cos((2 * k[:, None] + 1) * k[None, :] * np.pi / 16)  # [spatial, frequency]
    basis = np.einsum("xu,yv->xyuv", cos, cos).reshape(64, 64).astype(np.float32)
    alpha = np.array([1 / np.sqrt(2)] + [1.0] * 7)
    scale = (np.outer(alpha, alpha) * 0.25).astype(np.float32).reshape(64)
    # forward: coef[uv] = scale[uv] * sum_xy pix[xy] basis[xy, uv]
    # inverse: pix[xy] = 0.25 * sum_uv (coef[uv] * alpha[uv]) basis[xy, uv] + 128
    return basis, scale, np.outer(alpha, alpha).astype(np.float32).reshape(64)


_BASIS, _DCT_SCALE, _IDCT_ALPHA = _dct_matrices()


def quality_factor(quality) -> np.float32:
    """libjpeg's table scaling for a (float) quality in (0, 100], in float32."""
    q = np.float32(quality)
    f = np.float32(5000.0) / q if q < 50 else np.float32(200.0) - q * np.float32(2.0)
    return f / np.float32(100.0)


def _blocks(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)


def _merge(blocks: np.ndarray, h: int, w: int) -> np.ndarray:
    return blocks.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def _code(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """DCT, quantise (round half to even), dequantise and inverse DCT one plane."""
    coef = _DCT_SCALE * ((_blocks(plane) - np.float32(128)) @ _BASIS)
    coef = np.round(coef / table) * table
    pix = np.float32(0.25) * ((coef * _IDCT_ALPHA) @ _BASIS.T) + np.float32(128)
    return _merge(pix, *plane.shape)


def jpeg(img: np.ndarray, quality: float) -> np.ndarray:
    """HWC float32 RGB in [0, 1] -> its JPEG at `quality`, float32 in [0, 1]."""
    h, w = img.shape[:2]
    ph, pw = -h % 16, -w % 16
    x = np.pad(np.asarray(img, np.float32), ((0, ph), (0, pw), (0, 0)))
    ycc = (x * np.float32(255)) @ _TO_YCBCR.T + _CHROMA_SHIFT
    factor = quality_factor(quality)
    luma, chroma = (_LUMA * factor).reshape(64), (_CHROMA * factor).reshape(64)
    y = _code(ycc[..., 0], luma)
    c = ycc[..., 1:]
    c = (((c[0::2, 0::2] + c[0::2, 1::2]) + c[1::2, 0::2]) + c[1::2, 1::2]) / np.float32(4)
    c = np.stack([_code(c[..., i], chroma) for i in range(2)], axis=-1)
    c = np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)
    rgb = (np.concatenate([y[..., None], c], axis=-1) - _CHROMA_SHIFT) @ _TO_RGB.T
    return (np.clip(rgb, 0, 255) / np.float32(255))[:h, :w]
