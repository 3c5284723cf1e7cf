"""Write tests/fixtures/degradation_ops.npz: the reference's JPEG, resizes and noises.

Run where torch and torchvision are, with YOUR checkout of zsyOAOA/ResShift; nothing of
the reference is copied, its modules are imported from the checkout:

    python tools/make_degradation_ops_fixture.py --reference ~/ResShift

Everything is computed on CPU in float32 on seeded inputs and saved as plain NHWC arrays:
- `jpeg_in_{h}x{w}` (4 images, float16 values) through BasicSR's DiffJPEG(differentiable=False), one
  float quality each (`jpeg_quality`), as `jpeg_out_{h}x{w}`;
- `resize_in_{h}x{w}` through F.interpolate(mode=area|bilinear|bicubic,
  align_corners=False) once per line of `resize_cases` ("name mode scale s" passes
  scale_factor=s, "name mode size h w" passes size=(h, w)), as `resize_out_{i}`;
- the Poisson and Gaussian noise of the trainer (add_*_noise_pt, clip=True, rounds=False)
  with the random draws made deterministic: torch.poisson is replaced by floor(x + 0.3)
  and torch.randn's values are recorded (`gauss_randn_color`, `gauss_randn_gray`).
"""
import argparse
import importlib.util
import pathlib
import sys
import types

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/degradation_ops.npz"
JPEG_SIZES = ((37, 53), (64, 64), (24, 40), (101, 67))
JPEG_QUALITIES = (30.0, 47.3, 75.6, 95.0)
RESIZE_SIZES = ((37, 53, 3), (20, 16, 3), (7, 300, 1))  # a strip: source coordinates up to 450
RESIZE_SCALES = (0.15, 0.37, 0.5, 1.0, 1.02, 1.43, 1.5)  # 1.02: torch's equal-size shortcut
RESIZE_TARGETS = ((23, 17), (41, 60), (48, 20))


def _load(reference: pathlib.Path, relative: str, name: str):
    """Import one reference file by path (the basicsr package __init__ needs far more)."""
    spec = importlib.util.spec_from_file_location(name, reference / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(rng, h, w, c=3):
    """Smooth colour waves plus noise, clipped: flat, saturated and textured regions."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    f = rng.uniform(0.5, 4, (2, c))
    phase = rng.uniform(0, 2 * np.pi, c)
    base = 0.5 + 0.6 * np.sin(2 * np.pi * (xx[..., None] * f[0] + yy[..., None] * f[1]) + phase)
    return np.clip(base + rng.normal(0, 0.06, (h, w, c)), 0, 1).astype(np.float32)


def _nchw(x):
    import torch
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _nhwc(t):
    return t.numpy().transpose(0, 2, 3, 1).astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, help="your checkout of zsyOAOA/ResShift")
    p.add_argument("-o", "--out", default=str(OUT))
    args = p.parse_args(argv)
    import torch
    import torch.nn.functional as F
    import torchvision.transforms._functional_tensor as tv_tensor
    # degradations.py imports the module under its pre-0.17 torchvision name
    sys.modules.setdefault("torchvision.transforms.functional_tensor",
                           types.SimpleNamespace(rgb_to_grayscale=tv_tensor.rgb_to_grayscale))
    reference = pathlib.Path(args.reference)
    diffjpeg = _load(reference, "basicsr/utils/diffjpeg.py", "ref_diffjpeg")
    degradations = _load(reference, "basicsr/data/degradations.py", "ref_degradations")
    torch.set_grad_enabled(False)
    rng = np.random.default_rng(2024)
    out = {"jpeg_quality": np.asarray(JPEG_QUALITIES, np.float32)}

    jpeger = diffjpeg.DiffJPEG(differentiable=False)
    for h, w in JPEG_SIZES:
        # float16-representable inputs: saved as float16, half the bytes, same float32 values
        x = np.stack([_image(rng, h, w) for _ in JPEG_QUALITIES]).astype(np.float16)
        quality = torch.tensor(JPEG_QUALITIES, dtype=torch.float32)
        out[f"jpeg_in_{h}x{w}"] = x
        out[f"jpeg_out_{h}x{w}"] = _nhwc(jpeger(_nchw(x.astype(np.float32)), quality=quality))

    cases = []
    for h, w, c in RESIZE_SIZES:
        # the strip is white noise: neighbours differ, so a source coordinate off by an ulp shows
        x = (_image(rng, h, w, c) if c == 3 else rng.random((h, w, c), np.float32))[None]
        name = f"{h}x{w}"
        out[f"resize_in_{name}"] = x[0]
        for mode in ("area", "bilinear", "bicubic"):
            for s in RESIZE_SCALES:
                y = F.interpolate(_nchw(x), scale_factor=s, mode=mode)
                out[f"resize_out_{len(cases)}"] = _nhwc(y)[0]
                cases.append(f"{name} {mode} scale {s!r}")
            for th, tw in RESIZE_TARGETS:
                y = F.interpolate(_nchw(x), size=(th, tw), mode=mode)
                out[f"resize_out_{len(cases)}"] = _nhwc(y)[0]
                cases.append(f"{name} {mode} size {th} {tw}")
    out["resize_cases"] = np.asarray(cases)

    # noise: a bicubic-upscaled image (values slightly outside [0, 1], as in the trainer)
    x = np.stack([_image(rng, 13, 11) for _ in range(3)])
    x = _nhwc(F.interpolate(_nchw(x), scale_factor=1.8, mode="bicubic"))
    x[1] = np.round(x[1] * 6) / 6  # few distinct values: a small power of two of levels
    out["noise_in"] = x
    out["noise_gray"] = np.asarray([0, 1, 1], np.float32)
    out["poisson_scale"] = np.asarray([0.05, 1.7, 3.0], np.float32)
    real_poisson, real_randn = torch.poisson, torch.randn
    try:
        torch.poisson = lambda t: torch.floor(t + 0.3)
        y = degradations.add_poisson_noise_pt(
            _nchw(x), scale=torch.from_numpy(out["poisson_scale"]), clip=True, rounds=False,
            gray_noise=torch.from_numpy(out["noise_gray"]))
        out["poisson_out"] = _nhwc(y)
        drawn = []

        def recorded_randn(*size, dtype=None, device=None):
            z = torch.from_numpy(rng.standard_normal(size).astype(np.float32))
            drawn.append(z)
            return z
        torch.randn = recorded_randn
        out["gauss_sigma"] = np.asarray([1.0, 17.3, 30.0], np.float32)
        y = degradations.add_gaussian_noise_pt(
            _nchw(x), sigma=torch.from_numpy(out["gauss_sigma"]), clip=True, rounds=False,
            gray_noise=torch.from_numpy(out["noise_gray"]))
        out["gauss_out"] = _nhwc(y)
        gray, color = drawn  # generate_gaussian_noise_pt draws the gray noise first
        out["gauss_randn_gray"] = gray.numpy()
        out["gauss_randn_color"] = _nhwc(color)
    finally:
        torch.poisson, torch.randn = real_poisson, real_randn

    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    print(f"wrote {path}: {len(out)} arrays, {path.stat().st_size / 1e6:.2f} MB, "
          f"{len(cases)} resize cases")


if __name__ == "__main__":
    main()
