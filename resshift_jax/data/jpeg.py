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
chroma smoothing), which is why the reference's own algorithm is used. The DCTs are
scipy's (DiffJPEG's 0.25 * alpha_u * alpha_v scaling is the orthonormal one) and nothing
goes through BLAS, whose threads thrash when the data workers share the cores.
"""
import numpy as np
from scipy import fft

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
_SHIFT = np.float32(128)


def quality_factor(quality) -> np.float32:
    """libjpeg's table scaling for a (float) quality in (0, 100], in float32."""
    q = np.float32(quality)
    f = np.float32(5000.0) / q if q < 50 else np.float32(200.0) - q * np.float32(2.0)
    return f / np.float32(100.0)


def _mix(planes, matrix, shift):
    """Colour conversion, channel by channel (a 3x3 matmul would go through BLAS)."""
    return [(planes[0] * m[0] + planes[1] * m[1]) + planes[2] * m[2] + s
            for m, s in zip(matrix, shift)]


def _code(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """8x8 blocks: DCT-II, quantise (round half to even), dequantise, inverse DCT."""
    h, w = plane.shape
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3) - _SHIFT
    coef = fft.dctn(blocks, type=2, axes=(2, 3), norm="ortho")
    coef = np.round(coef / table) * table
    pix = fft.idctn(coef, type=2, axes=(2, 3), norm="ortho") + _SHIFT
    return pix.transpose(0, 2, 1, 3).reshape(h, w)


def jpeg(img: np.ndarray, quality: float) -> np.ndarray:
    """HWC float32 RGB in [0, 1] -> its JPEG at `quality`, float32 in [0, 1]."""
    h, w = img.shape[:2]
    x = np.pad(np.asarray(img, np.float32), ((0, -h % 16), (0, -w % 16), (0, 0))) * np.float32(255)
    zero = np.float32(0)
    y, cb, cr = _mix([x[..., i] for i in range(3)], _TO_YCBCR, (zero, _SHIFT, _SHIFT))
    factor = quality_factor(quality)
    y = _code(y, _LUMA * factor)
    chroma = []
    for c in (cb, cr):
        c = (((c[0::2, 0::2] + c[0::2, 1::2]) + c[1::2, 0::2]) + c[1::2, 1::2]) / np.float32(4)
        c = _code(c, _CHROMA * factor)
        chroma.append(np.repeat(np.repeat(c, 2, axis=0), 2, axis=1) - _SHIFT)
    rgb = np.stack(_mix([y] + chroma, _TO_RGB, (zero, zero, zero)), axis=-1)
    return (np.clip(rgb, 0, 255) / np.float32(255))[:h, :w]
