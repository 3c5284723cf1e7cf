"""Make a test set from a folder of GT images as the reference makes its own, deterministically.

    python -m resshift_jax.data.make_testset --config configs/realsr_v3.py --gt DIR --out DIR --seed 10000
    python -m resshift_jax.data.make_testset --face --gt celeba512 --out celeba_test --seed 10000

Default, after `scripts/prepare_testing_imagenet_sr.py` (ImageNet-Test): the GT images,
shuffled by the seed (the first `--num`), each resized so its shorter side is `gt_size`
(bilinear) and centre-cropped to gt_size x gt_size (albumentations SmallestMaxSize +
CenterCrop, its RealESRGANDataset's 'testing' mode), then degraded with the config's data
pipeline (`degradation_for(config.data.train, config.sf)`: the training degradation, or, with
`--imagenet_test_params`, the milder settings of its configs/degradation_testing_realesrgan.yaml).
`--face`, after `scripts/prepare_testing_celeba_faceir.py` (CelebA-Test): GT kept as is; per
image sf ~ U(1, 32), JPEG quality ~ U(30, 70), noise ~ U(1, 20), an anisotropic 41x41 Gaussian
blur with sigmas ~ U(4, 16) and angle ~ U(0, pi), bilinear down, noise, OpenCV JPEG, bilinear
back up, rounded. Each image's randomness is (seed, its rank), so the same seed and folder give
the same bytes. Writes OUT/gt/NAME.png and OUT/lq/NAME.png.
"""
import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from resshift_jax import config_file
from resshift_jax.data import kernels
from resshift_jax.data.face import opencv_jpeg
from resshift_jax.image_io import ImageReadError, list_images, read_image, write_png

# configs/degradation_testing_realesrgan.yaml of the reference (ImageNet-Test), in our names
IMAGENET_TEST_PARAMS = dict(
    blur_kernel_size=13, kernel_list=("iso", "aniso", "generalized_iso", "generalized_aniso",
                                      "plateau_iso", "plateau_aniso"),
    kernel_prob=(0.6, 0.4, 0.0, 0.0, 0.0, 0.0), sinc_prob=0.1, blur_sigma=(0.2, 0.8),
    betag_range=(1.0, 1.5), betap_range=(1, 1.2), blur_kernel_size2=7,
    kernel_list2=("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                  "plateau_aniso"),
    kernel_prob2=(0.6, 0.4, 0.0, 0.0, 0.0, 0.0), sinc_prob2=0.0, blur_sigma2=(0.2, 0.5),
    betag_range2=(0.5, 0.8), betap_range2=(1, 1.2), final_sinc_prob=0.2,
    resize_prob=(0.2, 0.7, 0.1), resize_range=(0.5, 1.5), gaussian_noise_prob=0.5,
    noise_range=(1, 15), poisson_scale_range=(0.05, 0.3), gray_noise_prob=0.4,
    jpeg_range=(70, 95), second_order_prob=0.0, second_blur_prob=0.2,
    resize_prob2=(0.3, 0.4, 0.3), resize_range2=(0.8, 1.2), gaussian_noise_prob2=0.5,
    noise_range2=(1, 10), poisson_scale_range2=(0.05, 0.2), gray_noise_prob2=0.4,
    jpeg_range2=(80, 100))


def center_square(img: np.ndarray, size: int, resize: bool = True) -> np.ndarray:
    """Shorter side to `size` (cv2 bilinear, sizes rounded; unless not `resize`), then the
    centred size x size crop."""
    h, w = img.shape[:2]
    scale = size / float(min(h, w))
    if resize and scale != 1.0:
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[top:top + size, left:left + size])


def face_degradation(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The reference's CelebA-Test degradation of an HWC float32 image in [0, 1]."""
    sf, qf, nf = rng.uniform(1.0, 32), rng.uniform(30, 70), rng.uniform(1.0, 20)
    sig_x, sig_y, theta = rng.uniform(4.0, 16), rng.uniform(4.0, 16), rng.uniform() * math.pi
    h, w = hq.shape[:2]
    kernel = kernels.bivariate_gaussian(41, sig_x, sig_y, theta, isotropic=False)
    lq = kernels.filter2d(hq, kernel)
    lq = cv2.resize(lq, (int(w // sf), int(h // sf)), interpolation=cv2.INTER_LINEAR)
    noise = rng.standard_normal(lq.shape).astype(np.float32) * np.float32(nf / 255.0)
    lq = opencv_jpeg(np.clip(lq + noise, 0, 1), int(qf))
    lq = cv2.resize(lq, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.round(lq * 255.0), 0, 255) / 255.0


def make_pair(img: np.ndarray, rng, *, degradation=None, gt_size: int = 256, face: bool = False,
              resize: bool = True):
    """(gt, lq) float32 HWC in [0, 1] for one GT image."""
    if face:
        return img, face_degradation(img, rng).astype(np.float32)
    out = degradation(center_square(img, gt_size, resize), rng)
    return out["hq"], out["lq"]


def degraded_crops(images, names, degradation, *, gt_size: int, grid: int, seed: int) -> list:
    """[{name, lq, gt}]: the centred grid x grid block of gt_size crops of each uint8 photo, at
    its own scale, each degraded like make_testset's images, from (seed, rank)."""
    out = []
    for image, name in zip(images, names):
        h, w = image.shape[:2]
        top, left = (h - grid * gt_size) // 2, (w - grid * gt_size) // 2
        if top < 0 or left < 0:
            raise ValueError(f"{name}: {w}x{h} is smaller than {grid}x{grid} crops of {gt_size}")
        for i in range(grid * grid):
            y, x = top + (i // grid) * gt_size, left + (i % grid) * gt_size
            crop = image[y:y + gt_size, x:x + gt_size].astype(np.float32) / 255.0
            gt, lq = make_pair(crop, np.random.default_rng([seed, len(out)]),
                               degradation=degradation, gt_size=gt_size, resize=False)
            out.append({"name": f"{name}_{i}.png", "lq": lq, "gt": gt})
    return out


def make_testset(gt_dir, out_dir, *, seed: int, config=None, face: bool = False,
                 num: int = 0, imagenet_test_params: bool = False) -> list:
    """Write OUT/gt and OUT/lq; returns the problems (unreadable files), one line each."""
    files = list_images(gt_dir)
    files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    files = files[:num] if num else files
    degradation, gt_size = None, 0
    if not face:
        from resshift_jax.data.degradations import degradation_for
        data = config.data.train
        if imagenet_test_params:
            data = data.copy_and_resolve_references()
            data.params = dict(IMAGENET_TEST_PARAMS)
        degradation, gt_size = degradation_for(data, config.sf), int(data.gt_size)
    out_dir, problems = Path(out_dir), []
    for rank, path in enumerate(files):
        try:
            img, _ = read_image(path)
        except ImageReadError as err:
            problems.append(f"{err}; skipped")
            continue
        gt, lq = make_pair(img, np.random.default_rng([seed, rank]), degradation=degradation,
                           gt_size=gt_size, face=face)
        name = Path(path).relative_to(gt_dir).with_suffix(".png")
        for sub, image in (("gt", gt), ("lq", lq)):
            target = out_dir / sub / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_png(target, image)
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", help="configs/*.py whose data.train degradation is used")
    p.add_argument("--gt", required=True, help="folder of ground-truth images")
    p.add_argument("--out", required=True, help="writes OUT/gt and OUT/lq")
    p.add_argument("--seed", type=int, default=10000, help="the reference's scripts use 10000")
    p.add_argument("--num", type=int, default=0, help="first N after shuffling (0: all)")
    p.add_argument("--face", action="store_true", help="CelebA-Test's face degradation")
    p.add_argument("--imagenet_test_params", action="store_true",
                   help="ImageNet-Test's degradation settings instead of the config's")
    args = p.parse_args(argv)
    if not args.face and not args.config:
        sys.exit("error: --config is needed (or --face)")
    if Path(args.out).resolve() == Path(args.gt).resolve():
        sys.exit("error: --out may not be the --gt folder")
    try:
        config = config_file.load(args.config) if args.config else None
    except config_file.ConfigError as err:
        sys.exit(f"error: {err}")
    problems = make_testset(args.gt, args.out, seed=args.seed, config=config, face=args.face,
                            num=args.num, imagenet_test_params=args.imagenet_test_params)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
