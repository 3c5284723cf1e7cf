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
the same bytes. Writes OUT/gt/NAME.png and OUT/lq/NAME.png; results already there are kept
(a rerun writes only the missing ones, the same bytes) unless `--overwrite`. A file that fails
(unreadable, two inputs with one output name, a failed write) is reported in one line,
`failed: FILE: reason`, and the rest are written; a summary line counts them, and the exit
status is then 1. Unusable arguments (a negative --num or --seed, a bad config, a missing or
empty --gt, an --out that is a file, cannot be written or holds --gt) stop it before any image
is made, in one line with status 2.
"""
import argparse
import dataclasses
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from resshift_jax import config_file
from resshift_jax.folders import FolderError, check_writable
from resshift_jax.data import kernels
from resshift_jax.data.face import opencv_jpeg
from resshift_jax.image_io import ImageReadError, error_line, list_images, read_image, write_png

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
    if min(h, w) // sf < 1:
        raise ValueError(f"{w}x{h} px is too small for the face degradation: its drawn scale "
                         f"factor {sf:.1f} (of U(1, 32)) needs a side of at least {math.ceil(sf)} px")
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


class TestsetError(ValueError):
    """The folders given cannot make a test set; the message says why, in one line."""


@dataclasses.dataclass
class Summary:
    written: int = 0  # GT/LQ pairs (or the missing half of one) written
    kept: int = 0  # pairs already in OUT, left as they are
    failures: list = dataclasses.field(default_factory=list)  # "FILE: reason", one line each

    def line(self, out_dir) -> str:
        return (f"{self.written} pairs written to {out_dir}, {len(self.failures)} failed, "
                f"{self.kept} kept (already there; --overwrite replaces them)")


def _inputs(gt_dir: Path, out_dir: Path) -> list:
    """The GT files, none from OUT/gt or OUT/lq (results are never inputs, nor replace one)."""
    if not gt_dir.exists():
        raise TestsetError(f"{gt_dir}: --gt does not exist")
    gt_abs, out_abs = gt_dir.resolve(), out_dir.resolve()
    if gt_abs == out_abs:
        raise TestsetError(f"{gt_dir}: --out may not be the --gt folder")
    for sub in ("gt", "lq"):
        if out_abs / sub == gt_abs or out_abs / sub in gt_abs.parents:
            raise TestsetError(f"{gt_dir}: --gt is inside --out's {sub}/ folder, whose results "
                               "would replace its images; give another --out")
    try:
        files = list_images(gt_dir)
    except ImageReadError as err:
        raise TestsetError(f"--gt {err}") from None
    files = [f for f in files
             if not {out_abs / "gt", out_abs / "lq"} & {f.parent.resolve(), *f.parent.resolve().parents}]
    if not files:
        raise TestsetError(f"{gt_dir}: no images in --gt (none outside --out's gt/ and lq/)")
    return files


def _check_out(out_dir: Path) -> None:
    """OUT, OUT/gt and OUT/lq: folders that can be written (made if missing)."""
    check_writable(out_dir, "--out folder")
    for sub in ("gt", "lq"):
        check_writable(out_dir / sub, f"--out folder's {sub}/")


def _degradation(config, imagenet_test_params: bool) -> tuple:
    """(degradation, gt_size) of the config's data.train; TestsetError if it has none."""
    from resshift_jax.data.degradations import degradation_for
    try:
        data = config.data.train
        if imagenet_test_params:
            data = data.copy_and_resolve_references()
            data.params = dict(IMAGENET_TEST_PARAMS)
        return degradation_for(data, config.sf), int(data.gt_size)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise TestsetError(f"--config: no usable data.train degradation and sf "
                           f"({error_line(err)})") from None


def make_testset(gt_dir, out_dir, *, seed: int, config=None, face: bool = False,
                 num: int = 0, imagenet_test_params: bool = False,
                 overwrite: bool = False) -> Summary:
    """Write OUT/gt and OUT/lq: existing results are kept unless `overwrite`; a file that
    fails (unreadable, or its result not written) is a line of the summary's failures.
    Unusable arguments raise TestsetError or FolderError before any image is made."""
    if seed < 0:
        raise TestsetError(f"--seed {seed}: give 0 or more")
    if num < 0:
        raise TestsetError(f"--num {num}: give 0 (all) or more")
    gt_dir, out_dir = Path(gt_dir), Path(out_dir)
    files = _inputs(gt_dir, out_dir)
    degradation, gt_size = (None, 0) if face else _degradation(config, imagenet_test_params)
    _check_out(out_dir)
    files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    files = files[:num] if num else files
    summary, owner = Summary(), {}
    base = gt_dir if gt_dir.is_dir() else gt_dir.parent
    for rank, path in enumerate(files):
        name = Path(path).relative_to(base).with_suffix(".png")
        if name in owner:
            summary.failures.append(f"{path}: its results would be {name}, as "
                                    f"{owner[name]}'s are; rename one")
            continue
        owner[name] = path
        targets = [t for t in (out_dir / "gt" / name, out_dir / "lq" / name)
                   if overwrite or not t.exists()]
        if not targets:
            summary.kept += 1
            continue
        try:
            img, _ = read_image(path)
            gt, lq = make_pair(img, np.random.default_rng([seed, rank]), degradation=degradation,
                               gt_size=gt_size, face=face)
            for target, image in ((out_dir / "gt" / name, gt), (out_dir / "lq" / name, lq)):
                if target in targets:
                    write_png(target, image)
        except ImageReadError as err:
            summary.failures.append(str(err))
            continue
        except Exception as err:  # noqa: BLE001 -- one image never stops the set
            summary.failures.append(f"{path}: {error_line(err)}")
            continue
        summary.written += 1
    return summary


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
    p.add_argument("--overwrite", action="store_true",
                   help="replace results already in OUT (default: keep them)")
    args = p.parse_args(argv)
    try:
        if not args.face and not args.config:
            raise TestsetError("--config is needed (or --face)")
        config = config_file.load(args.config) if args.config else None
        summary = make_testset(args.gt, args.out, seed=args.seed, config=config, face=args.face,
                               num=args.num, imagenet_test_params=args.imagenet_test_params,
                               overwrite=args.overwrite)
    except (config_file.ConfigError, TestsetError, FolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in summary.failures:
        print(f"failed: {line}", file=sys.stderr)
    print(summary.line(args.out))
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
