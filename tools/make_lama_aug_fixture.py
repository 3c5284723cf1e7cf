"""Write tests/fixtures/lama_aug.npz: each operation of the reference's `lama_distortions`.

The reference (datapipe/datasets.py, LamaDistortionTransform) builds its inpaint_imagenet
training augmentation from albumentations 1.3 and imgaug 0.4 (through its datapipe/aug.py
wrappers). Run this where those are installed (imgaug needs numpy < 2):

    pip install "numpy<2" "albumentations==1.3.1" imgaug
    python tools/make_lama_aug_fixture.py

Every operation is applied once with fixed parameters (the random draws made explicit) to a
seeded uint8 photograph-like image and saved as `<op>` next to its parameters.
"""
import pathlib

import albumentations as A
import cv2
import imgaug.augmenters as iaa
import imgaug.parameters as iap
import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/lama_aug.npz"


class _Fixed(iap.StochasticParameter):
    """A parameter that always draws the given array (imgaug's jitter made explicit)."""

    def __init__(self, values):
        super().__init__()
        self.values = np.asarray(values, np.float32)

    def _draw_samples(self, size, random_state):
        return np.broadcast_to(self.values, size).copy()


def _image(rng, h, w):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(11 * x * y)], -1)
    img = 127.5 + 90 * base + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(0)
    img = _image(rng, 160, 240)
    out = {"input": img}

    out["smallest_max_size"] = A.SmallestMaxSize(max_size=256, p=1)(image=img)["image"]

    jitter = np.array([[0.03, -0.05], [0.01, 0.07], [-0.02, 0.04], [0.06, -0.01]], np.float32)
    perspective = iaa.PerspectiveTransform(scale=0.05, keep_size=True, mode="replicate")
    perspective.jitter = _Fixed(jitter)
    out["perspective_jitter"], out["perspective"] = jitter, perspective(image=img)

    affine = dict(scale_x=1.2, scale_y=0.85, rotate=23.0, shear_x=0.07, shear_y=-0.05)
    out["affine_params"] = np.array(list(affine.values()), np.float64)
    out["affine"] = iaa.Affine(
        scale={"x": affine["scale_x"], "y": affine["scale_y"]}, rotate=affine["rotate"],
        shear={"x": affine["shear_x"], "y": affine["shear_y"]}, order=1, cval=0,
        mode="reflect")(image=img)

    out["pad_if_needed"] = A.PadIfNeeded(min_height=256, min_width=256, p=1)(image=img)["image"]
    out["optical_distortion_k"] = np.float64(0.04)
    out["optical_distortion"] = A.OpticalDistortion(p=1).apply(img, k=0.04, dx=0, dy=0)
    out["clahe_clip"] = np.float64(2.5)
    out["clahe"] = A.CLAHE(p=1).apply(img.copy(), clip_limit=2.5)
    out["brightness_contrast_params"] = np.array([1.15, -0.1])
    out["brightness_contrast"] = A.RandomBrightnessContrast(p=1).apply(img, alpha=1.15, beta=-0.1)
    out["hsv_params"] = np.array([3.3, -17.2, 4.1])
    out["hsv"] = A.HueSaturationValue(p=1).apply(img, hue_shift=3.3, sat_shift=-17.2,
                                                 val_shift=4.1)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} (opencv {cv2.__version__}, albumentations {A.__version__})")


if __name__ == "__main__":
    main()
