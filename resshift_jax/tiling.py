"""Large-image chopping: run a fixed-shape network over overlapping tiles and blend.

Mirrors the reference's `ImageSpliterTh` (patch layout and, in `average` mode, the exact
output) while keeping the network's input shape fixed so a jitted function compiles once.

Along each axis the tile extent is `min(L, chop_size)`: an axis no longer than the chop is
one tile covering it (as in the reference), so an image smaller than the chop in both
axes is a single tile of its own size. `bucket_sizes` gives the few square sizes that
images smaller than the chop are padded to, so a folder of many sizes compiles few programs.
"""
from typing import Callable, Optional

import numpy as np

BLEND_MODES = ("average", "gaussian")
_DEFAULT_OVERLAP = {512: 64, 256: 32, 64: 16}  # the reference's stride rule, LQ pixels


def chop_geometry(chop_size: int, chop_stride: int, sf: int):
    """(tile size, stride) in LQ pixels by the reference's rule (inference_resshift.py).

    A negative stride takes the reference's default, an overlap of 1/8 of the tile; both
    are scaled by 4 // sf, so x1 tasks (inpainting, face restoration) tile at 4x the size.
    """
    factor = max(4 // sf, 1)
    if chop_size < 1:
        raise ValueError(f"chop_size {chop_size}: give a positive tile size (LQ pixels)")
    if chop_stride == 0 or chop_stride > chop_size:
        raise ValueError(f"chop_stride {chop_stride}: give 1..{chop_size} (the chop_size; tiles "
                         "may not leave gaps), or -1 for the reference's rule")
    if chop_stride < 0:
        if chop_size not in _DEFAULT_OVERLAP:
            raise ValueError(f"chop_size {chop_size}: give --chop_stride too (the reference's "
                             f"default strides exist for {sorted(_DEFAULT_OVERLAP)})")
        chop_stride = (chop_size - _DEFAULT_OVERLAP[chop_size]) * factor
    else:
        chop_stride *= factor
    return chop_size * factor, chop_stride


def patch_starts(length: int, chop: int, stride: int) -> list[int]:
    """Tile starts along one axis: `range(0, length, stride)`, overhangs moved to `length - chop`."""
    if chop <= 0 or not 0 < stride <= chop:
        raise ValueError(f"need 0 < stride <= chop, got chop={chop}, stride={stride}")
    if length <= chop:
        return [0]
    starts = []
    for s in range(0, length, stride):
        s = min(s, length - chop)
        if s not in starts:
            starts.append(s)
    return starts


def pad_to_size(img, size: tuple[int, int], mode: str = "reflect"):
    """Pad bottom/right of HWC or NHWC `img` to at least `size` (H, W); returns
    `(padded, (h, w))`, the original size for `crop_to`. Unlike torch, numpy's reflect
    also works when the pad exceeds the size (it keeps reflecting back and forth)."""
    img = np.asarray(img)
    h, w = img.shape[-3], img.shape[-2]
    pad_h, pad_w = max(size[0] - h, 0), max(size[1] - w, 0)
    if pad_h or pad_w:
        widths = [(0, 0)] * img.ndim
        widths[-3], widths[-2] = (0, pad_h), (0, pad_w)
        img = np.pad(img, widths, mode=mode)
    return img, (h, w)


def round_up(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def pad_to_multiple(img, multiple: int, mode: str = "reflect"):
    """Pad bottom/right of HWC or NHWC `img` so H and W are multiples of `multiple`, as the
    reference sampler does before sampling (`F.pad(..., mode="reflect")` with
    `padding_offset = lq_size`). Returns `(padded, (h, w))` as `pad_to_size`."""
    h, w = np.shape(img)[-3], np.shape(img)[-2]
    return pad_to_size(img, (round_up(h, multiple), round_up(w, multiple)), mode)


BUCKET_FRACTIONS = (1 / 4, 3 / 8, 1 / 2, 3 / 4, 1)


def bucket_sizes(chop_size: int, multiple: int) -> tuple[int, ...]:
    """The square sizes (LQ pixels) images no larger than the chop are padded to: these
    fractions of the chop, rounded up to `multiple`; the largest is the tile size."""
    return tuple(sorted({round_up(max(int(np.ceil(f * chop_size)), 1), multiple)
                         for f in BUCKET_FRACTIONS}))


def bucket_of(length: int, buckets) -> int:
    """The smallest bucket holding `length` pixels."""
    for size in buckets:
        if length <= size:
            return size
    raise ValueError(f"{length} px is larger than the largest bucket ({buckets[-1]})")


def crop_to(img, size: tuple[int, int], sf: int = 1):
    """Undo `pad_to_multiple` on an output upscaled by `sf`: keep the top-left `size * sf`."""
    h, w = size
    return img[..., : h * sf, : w * sf, :]


def _axis_weights(extent: int, band: int, blend: str) -> np.ndarray:
    """1-D blending profile of one output tile axis of `extent` pixels.

    `gaussian`: 1 in the interior, falling as a Gaussian (sigma = band / 3) over the outer
    `band` pixels (the overlap between neighbouring tiles) to about 1% at the edge pixel:
    smooth, strictly positive, so overlapping tiles cross-fade over the whole overlap.
    """
    if blend == "average" or band <= 0:
        return np.ones(extent, np.float64)
    x = np.arange(extent, dtype=np.float64) + 0.5
    dist = np.minimum(x, extent - x)  # distance of the pixel centre to the nearer edge
    sigma = band / 3.0
    return np.exp(-0.5 * (np.maximum(band - dist, 0.0) / sigma) ** 2)


def chop_and_run(
    image,
    fn: Callable,
    *,
    chop_size: int,
    chop_stride: int,
    sf: int,
    batch_size: int = 1,
    blend: str = "gaussian",
    progress: Optional[Callable[[int, int], None]] = None,
) -> np.ndarray:
    """Apply `fn(tiles, ids)` (NHWC batch -> NHWC batch upscaled by `sf`) tile by tile, blend.

    `image`: HWC or NHWC. Tiles of every image in the batch are fed to `fn` in batches
    of exactly `batch_size` (the last one padded by repeating its final tile; those
    outputs are dropped), so `fn` only ever sees one input shape per image size. `ids`
    names each slot's (image index, tile index), so per-tile randomness can be drawn
    from them rather than from the batch composition.
    `blend`: `average` (equal weights: the reference's output exactly) or `gaussian`
    (cross-fade over the overlaps: no visible seams; with `chop_stride == chop_size` there
    is no overlap and it equals `average`). `progress(done, total)` is called
    after each batch with tile counts. Returns float32 in the input's layout.
    """
    if blend not in BLEND_MODES:
        raise ValueError(f"blend must be one of {BLEND_MODES}, got {blend!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    image = np.asarray(image)
    squeeze = image.ndim == 3
    if squeeze:
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"expected HWC or NHWC image, got shape {image.shape}")
    n, height, width, _ = image.shape

    starts_h = patch_starts(height, chop_size, chop_stride)
    starts_w = patch_starts(width, chop_size, chop_stride)
    th, tw = min(height, chop_size), min(width, chop_size)
    band = (chop_size - chop_stride) * sf
    weight = np.outer(_axis_weights(th * sf, band, blend), _axis_weights(tw * sf, band, blend))
    weight = weight.astype(np.float32)[:, :, None]

    wsum = np.zeros((height * sf, width * sf, 1), np.float32)
    for hs in starts_h:
        for ws in starts_w:
            wsum[hs * sf : (hs + th) * sf, ws * sf : (ws + tw) * sf] += weight

    items = [(i, hs, ws) for hs in starts_h for ws in starts_w for i in range(n)]
    tile_index = {(hs, ws): k for k, (hs, ws) in enumerate(
        (hs, ws) for hs in starts_h for ws in starts_w)}
    acc = None
    for b0 in range(0, len(items), batch_size):
        chunk = items[b0 : b0 + batch_size]
        batch = [image[i, hs : hs + th, ws : ws + tw] for i, hs, ws in chunk]
        ids = [(i, tile_index[(hs, ws)]) for i, hs, ws in chunk]
        batch += [batch[-1]] * (batch_size - len(chunk))
        ids += [ids[-1]] * (batch_size - len(chunk))
        out = np.asarray(fn(np.stack(batch), ids), np.float32)
        if out.shape[:3] != (batch_size, th * sf, tw * sf):
            raise ValueError(
                f"fn returned shape {out.shape}, expected ({batch_size}, {th * sf}, {tw * sf}, C)"
            )
        if acc is None:
            acc = np.zeros((n, height * sf, width * sf, out.shape[-1]), np.float32)
        for k, (i, hs, ws) in enumerate(chunk):
            acc[i, hs * sf : (hs + th) * sf, ws * sf : (ws + tw) * sf] += out[k] * weight
        if progress is not None:
            progress(min(b0 + batch_size, len(items)), len(items))
    result = acc / wsum
    return result[0] if squeeze else result
