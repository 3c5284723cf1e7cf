"""LaMa-style inpainting masks as the reference trains with: strokes, boxes, outpainting margins.

A mask is HxWx1 float32 with 1 where pixels are to be filled. `InpaintingDegradation`
gives (hq, lq, mask) with the masked pixels of lq set to 0 in [0, 1] (-1 in the model's
[-1, 1] range), as the reference's InpaintingDataSet.
"""
import cv2
import numpy as np


def irregular_mask(rng, h, w, max_angle=4, max_len=60, max_width=20, min_times=0, max_times=10):
    """Random thick polylines (brush strokes)."""
    mask = np.zeros((h, w), np.float32)
    for i in range(int(rng.integers(min_times, max_times + 1))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        for _ in range(1 + int(rng.integers(5))):
            angle = 0.01 + int(rng.integers(max_angle))
            if i % 2 == 0:
                angle = 2 * 3.1415926 - angle
            length = 10 + int(rng.integers(max_len))
            brush = 5 + int(rng.integers(max_width))
            ex = int(np.clip(x + length * np.sin(angle), 0, w))
            ey = int(np.clip(y + length * np.cos(angle), 0, h))
            cv2.line(mask, (x, y), (ex, ey), 1.0, brush)
            x, y = ex, ey
    return mask


def box_mask(rng, h, w, margin=10, bbox_min_size=30, bbox_max_size=100, min_times=0, max_times=3):
    mask = np.zeros((h, w), np.float32)
    max_size = min(bbox_max_size, h - margin * 2, w - margin * 2)
    for _ in range(int(rng.integers(min_times, max_times + 1))):
        bw, bh = int(rng.integers(bbox_min_size, max_size)), int(rng.integers(bbox_min_size, max_size))
        x = int(rng.integers(margin, w - margin - bw + 1))
        y = int(rng.integers(margin, h - margin - bh + 1))
        mask[y:y + bh, x:x + bw] = 1
    return mask


def outpainting_mask(rng, h, w, min_padding_percent=0.04, max_padding_percent=0.25,
                     left_padding_prob=0.5, top_padding_prob=0.5, right_padding_prob=0.5,
                     bottom_padding_prob=0.5):
    """Margins on random sides (at least one)."""
    mask = np.zeros((h, w), np.float32)
    probs = np.array([left_padding_prob, top_padding_prob, right_padding_prob, bottom_padding_prob])

    def pad(size):
        return int(rng.integers(int(min_padding_percent * size), int(max_padding_percent * size)))
    sides = [side for side, p in enumerate(probs) if rng.uniform() < p]
    if not sides:
        sides = [int(rng.choice(4, p=probs / probs.sum()))]
    for side in sides:
        if side == 0:
            mask[:, :pad(w)] = 1
        elif side == 1:
            mask[:pad(h)] = 1
        elif side == 2:
            mask[:, w - pad(w):] = 1
        else:
            mask[h - pad(h):] = 1
    return mask


GENERATORS = {"irregular": irregular_mask, "box": box_mask, "outpainting": outpainting_mask}


def mixed_mask(rng, h, w, mask_kwargs) -> np.ndarray:
    """One generator drawn with the configured `<name>_proba` weights, HxWx1."""
    names = [n for n in GENERATORS if mask_kwargs.get(f"{n}_proba", 0) > 0]
    probs = np.array([mask_kwargs[f"{n}_proba"] for n in names], np.float64)
    name = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    return GENERATORS[name](rng, h, w, **dict(mask_kwargs.get(f"{name}_kwargs") or {}))[..., None]


class InpaintingDegradation:
    """`deg(hq, rng) -> (hq, lq, mask)`, all HxW, values in [0, 1]."""

    def __init__(self, params, sf: int = 1, gt_size: int = 256):
        self.mask_kwargs = dict(params["mask_kwargs"])

    def __call__(self, hq: np.ndarray, rng: np.random.Generator):
        mask = mixed_mask(rng, hq.shape[0], hq.shape[1], self.mask_kwargs)
        return {"hq": hq.astype(np.float32), "lq": (hq * (1 - mask)).astype(np.float32),
                "mask": mask.astype(np.float32)}
