"""The reference's `lama_distortions` augmentation (inpaint_imagenet training), in OpenCV.

The reference composes albumentations 1.3 and imgaug 0.4 (LaMa's recipe): shortest side to
256; a four-point perspective jitter; an affine scale/rotate/shear; reflect padding to 256;
a barrel/pincushion optical distortion; a random 256 crop; a horizontal flip; CLAHE;
brightness/contrast; hue/saturation/value shifts. Each operation here computes what that
library's does for given parameters (tests/fixtures/lama_aug.npz); `lama_distortions`
draws the parameters with the same distributions and probabilities from a numpy generator.
"""
import math

import cv2
import numpy as np

PERSPECTIVE_SIGMA = (0.0, 0.06)
AFFINE_SCALE, AFFINE_ROTATE, AFFINE_SHEAR = (0.7, 1.3), (-40.0, 40.0), (-0.1, 0.1)
OPTICAL_K = (-0.05, 0.05)
CLAHE_CLIP = (1.0, 4.0)
BRIGHTNESS, CONTRAST = 0.2, 0.2
HUE, SATURATION, VALUE = 5.0, 30.0, 5.0


def smallest_max_size(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (bilinear) so that the shorter side is `size`; sides rounded half to even."""
    h, w = img.shape[:2]
    scale = size / float(min(h, w))
    if scale == 1.0:
        return img
    return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)


def _order_corners(points: np.ndarray) -> np.ndarray:
    ordered = np.zeros((4, 2), np.float32)
    sums, diffs = points.sum(axis=1), np.diff(points, axis=1)
    ordered[0], ordered[2] = points[np.argmin(sums)], points[np.argmax(sums)]
    ordered[1], ordered[3] = points[np.argmin(diffs)], points[np.argmax(diffs)]
    return ordered


def _edge_length(corners: np.ndarray, axis: int) -> int:
    """The longer of the quadrilateral's two edges along `axis` (0: x, 1: y), after moving
    the corners apart until the shorter one is at least 2 px (imgaug's guard, in place)."""
    tl, tr, br, bl = corners
    pairs = ((tr, tl), (br, bl)) if axis == 0 else ((tr, br), (tl, bl))
    low, high = ((tl, bl), (tr, br)) if axis == 0 else ((tl, tr), (bl, br))
    while True:
        lengths = [math.hypot(*(a - b)) for a, b in pairs]
        if int(min(lengths)) >= 2:
            return int(max(lengths))
        step = (2 - int(min(lengths))) / 2
        for corner in low:
            corner[axis] -= step
        for corner in high:
            corner[axis] += step


def perspective(img: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """imgaug's PerspectiveTransform(keep_size=True, mode='replicate') for a 4x2 corner jitter.

    Corners move inwards by |jitter| (fractions of width/height); the quadrilateral is
    warped (bilinear) to the rectangle of its longer edges, then resized back.
    """
    h, w = img.shape[:2]
    points = np.mod(np.abs(np.asarray(jitter, np.float32)), 1)
    points[1, 0], points[2, 0] = 1.0 - points[1, 0], 1.0 - points[2, 0]
    points[2, 1], points[3, 1] = 1.0 - points[2, 1], 1.0 - points[3, 1]
    points[:, 0] *= w
    points[:, 1] *= h
    corners = _order_corners(points)
    out_w, out_h = _edge_length(corners, 0), _edge_length(corners, 1)
    dst = np.array([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]], np.float32)
    matrix = cv2.getPerspectiveTransform(corners, dst)
    warped = cv2.warpPerspective(img, matrix, (out_w, out_h), borderMode=cv2.BORDER_REPLICATE)
    grows = h > out_h or w > out_w  # imgaug's default: area when enlarging, else bilinear
    return cv2.resize(warped, (w, h), interpolation=cv2.INTER_AREA if grows else cv2.INTER_LINEAR)


def _skimage_affine(scale=(1.0, 1.0), rotation=0.0, shear=0.0, translation=(0.0, 0.0)):
    """scikit-image's AffineTransform matrix (>= 0.19: shear as a tangent)."""
    sx, sy = scale
    cos, sin, tan = math.cos(rotation), math.sin(rotation), math.tan(shear)
    return np.array([[sx * cos, -sy * (tan * cos + sin), translation[0]],
                     [sx * sin, -sy * (tan * sin - cos), translation[1]],
                     [0.0, 0.0, 1.0]])


def affine(img: np.ndarray, scale_x: float, scale_y: float, rotate: float, shear_x: float,
           shear_y: float) -> np.ndarray:
    """imgaug's Affine(order=1, mode='reflect') about the image centre; angles in degrees."""
    h, w = img.shape[:2]
    cx, cy = w / 2.0 - 0.5, h / 2.0 - 0.5
    scale_x, scale_y = float(np.float32(scale_x)), float(np.float32(scale_y))  # imgaug's draws
    rotate, shear_x, shear_y = map(float, np.deg2rad(np.float32([rotate, shear_x, shear_y])))
    steps = [  # applied first to last, as imgaug composes them
        _skimage_affine(translation=(-cx, -cy)),
        _skimage_affine(rotation=-3.141592 / 2),
        _skimage_affine(shear=shear_y),
        _skimage_affine(rotation=3.141592 / 2),
        _skimage_affine((scale_x, scale_y), rotate, shear_x),
        _skimage_affine(translation=(cx, cy)),
    ]
    matrix = np.eye(3)
    for step in steps:
        matrix = step @ matrix
    return cv2.warpAffine(img, matrix[:2], (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def pad_if_needed(img: np.ndarray, size: int) -> np.ndarray:
    """Reflect-101 padding to at least size x size, centred (albumentations' PadIfNeeded)."""
    h, w = img.shape[:2]
    top, left = max(0, int((size - h) / 2.0)), max(0, int((size - w) / 2.0))
    bottom, right = max(0, size - h - top), max(0, size - w - left)
    if not (top or bottom or left or right):
        return img
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_REFLECT_101)


def optical_distortion(img: np.ndarray, k: float) -> np.ndarray:
    """Barrel/pincushion distortion with coefficients (k, k) about the centre (bilinear)."""
    h, w = img.shape[:2]
    camera = np.array([[w, 0, w * 0.5], [0, h, h * 0.5], [0, 0, 1]], np.float32)
    distortion = np.array([k, k, 0, 0, 0], np.float32)
    map_x, map_y = cv2.initUndistortRectifyMap(camera, distortion, None, None, (w, h),
                                               cv2.CV_32FC1)
    return cv2.remap(img, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT_101)


def clahe(img: np.ndarray, clip_limit: float) -> np.ndarray:
    """Contrast-limited histogram equalisation of the L channel (8x8 tiles)."""
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(8, 8)).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def brightness_contrast(img: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """x * alpha + beta * 255, clipped and truncated to uint8 (a lookup table)."""
    lut = np.arange(256, dtype=np.float32)
    lut *= alpha  # in place: stays float32, as albumentations' table
    lut += beta * 255
    return cv2.LUT(img, np.clip(lut, 0, 255).astype(np.uint8))


def hue_saturation_value(img: np.ndarray, hue: float, saturation: float, value: float):
    """Shift OpenCV's 8-bit HSV: hue modulo 180, saturation and value clipped."""
    h, s, v = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    table = np.arange(256, dtype=np.int16)
    if hue != 0:
        h = cv2.LUT(h, np.mod(table + hue, 180).astype(np.uint8))
    if saturation != 0:
        s = cv2.LUT(s, np.clip(table + saturation, 0, 255).astype(np.uint8))
    if value != 0:
        v = cv2.LUT(v, np.clip(table + value, 0, 255).astype(np.uint8))
    return cv2.cvtColor(cv2.merge((h, s, v)), cv2.COLOR_HSV2RGB)


def lama_distortions(img: np.ndarray, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """uint8 RGB of any size -> float32 size x size x 3 in [0, 1], the reference's chain.

    Probabilities as in the reference: the resize and crop always, each other step with 0.5.
    """
    coin = lambda: rng.uniform() < 0.5  # noqa: E731
    img = smallest_max_size(np.ascontiguousarray(img), size)
    if coin():
        img = perspective(img, rng.normal(0.0, rng.uniform(*PERSPECTIVE_SIGMA), (4, 2)))
    if coin():
        img = affine(img, rng.uniform(*AFFINE_SCALE), rng.uniform(*AFFINE_SCALE),
                     rng.uniform(*AFFINE_ROTATE), rng.uniform(*AFFINE_SHEAR),
                     rng.uniform(*AFFINE_SHEAR))
    img = pad_if_needed(img, size)
    if coin():
        img = optical_distortion(img, rng.uniform(*OPTICAL_K))
    h, w = img.shape[:2]
    top, left = int((h - size + 1) * rng.uniform()), int((w - size + 1) * rng.uniform())
    img = img[top:top + size, left:left + size]
    if coin():
        img = img[:, ::-1]
    img = np.ascontiguousarray(img)
    if coin():
        img = clahe(img, rng.uniform(*CLAHE_CLIP))
    if coin():
        img = brightness_contrast(img, 1.0 + rng.uniform(-CONTRAST, CONTRAST),
                                  rng.uniform(-BRIGHTNESS, BRIGHTNESS))
    if coin():
        img = hue_saturation_value(img, rng.uniform(-HUE, HUE),
                                   rng.uniform(-SATURATION, SATURATION), rng.uniform(-VALUE, VALUE))
    return img.astype(np.float32) / 255.0
