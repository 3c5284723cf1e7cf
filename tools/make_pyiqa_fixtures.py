"""Writes tests/fixtures/pyiqa/: pyiqa's own scores on real-photo crops, with random weights.

Run in a separate torch venv (never a dependency of the package):
    python3 -m venv /work/venvs/torch-eval
    /work/venvs/torch-eval/bin/pip install torch==2.13.0 pyiqa==0.1.16 "setuptools<81" \
        -c <(echo torch==2.13.0)     # keeps pip from swapping in a CUDA torch
    /work/venvs/torch-eval/bin/python tools/make_pyiqa_fixtures.py --data ../shared/data

pyiqa's networks are built without downloads (pretrained=False, torchvision trunks patched to
weights=None) and given the weights of tests/pyiqa_weights.py (seeded, numpy), so a fixture
stores only names and shapes; the tiny CLIP (RN, width 8, one text layer) is saved as a
TorchScript archive like OpenAI's RN50.pt, deflated, with its unused vocabulary rows zero.
PyPI's torchvision is built against CUDA torch; with the CPU wheel its two custom ops are
declared here so that it imports (nothing here calls them).
"""
import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

_TV = torch.library.Library("torchvision", "DEF")  # noqa: E305  (see docstring)
_TV.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_TV.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

import cv2  # noqa: E402
import pyiqa  # noqa: E402
import torchvision  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.pyiqa_weights import random_state_dict  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pyiqa"
PROMPTS = ["Good image", "bad image", "Sharp image", "blurry image", "sharp edges", "blurry edges",
           "High resolution image", "low resolution image", "Noise-free image", "noisy image"]


def crops(data: Path, size, count: int, seed: int) -> np.ndarray:
    """(count, h, w, 3) uint8 RGB crops of real photographs, at seeded positions."""
    files = sorted((data / "imagenet_val_x4" / "gt").glob("*.png"))
    rng = np.random.default_rng(seed)
    out = []
    for f in rng.choice(files, count, replace=False):
        im = cv2.imread(str(f))[..., ::-1]
        y, x = rng.integers(0, im.shape[0] - size[0] + 1), rng.integers(0, im.shape[1] - size[1] + 1)
        out.append(im[y:y + size[0], x:x + size[1]])
    return np.stack(out)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


def names_shapes(module) -> list:
    return [(k, list(v.shape)) for k, v in module.state_dict().items()]


def seeded(module, seed: int, keep=("scaling_layer.",)) -> list:
    """Seeded random weights into `module` (constant buffers named in `keep` left as they are)."""
    table = [(k, s) for k, s in names_shapes(module) if not k.startswith(keep)]
    weights = {k: torch.from_numpy(v) for k, v in random_state_dict(table, seed).items()}
    missing, unexpected = module.load_state_dict(weights, strict=False)
    assert not unexpected and all(k.startswith(keep) for k in missing), (missing, unexpected)
    return table


def lpips_fixture(data: Path, net: str) -> dict:
    from pyiqa.archs import lpips_arch
    name = {"alex": "alexnet", "vgg": "vgg16"}[net]
    trunk = getattr(torchvision.models, name)
    lpips_arch.models = type("tv", (), {name: staticmethod(lambda **_: trunk(weights=None))})
    metric = pyiqa.create_metric("lpips" if net == "alex" else "lpips-vgg", device="cpu",
                                 pretrained=False)
    table = seeded(metric.net, 1)
    pred, gt = crops(data, (64, 96), 3, 10), crops(data, (64, 96), 3, 11)
    with torch.no_grad():
        score = metric(to_tensor(pred), to_tensor(gt)).numpy().reshape(-1)
    return dict(pred=pred, gt=gt, score=score, names_shapes=json.dumps(table), seed=1)


def clip_fixture(data: Path) -> dict:
    from pyiqa.archs import clip_model
    from pyiqa.archs.clip_imports import clip
    tokens = clip.tokenize(PROMPTS)
    vocab, width, embed, vision_width = 49408, 64, 32, 8  # RN50: 49408, 512, 1024, 64
    model = clip_model.CLIP(embed, 128, (1, 1, 1, 1), vision_width, None, 77, vocab, width, 1, 1)
    table = names_shapes(model)
    sd = random_state_dict(table, 2)
    used = np.unique(tokens.numpy())
    keep = np.zeros(vocab, bool)
    keep[used] = True
    sd["token_embedding.weight"][~keep] = 0.0
    sd["logit_scale"] = np.asarray(np.log(100.0), np.float32)   # CLIP's trained value
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    model.eval()
    images = crops(data, (96, 128), 2, 12)
    scripted = torch.jit.trace(model, (to_tensor(images), tokens))
    raw = OUT / "clip_tiny_raw.pt"
    scripted.save(str(raw))
    path = OUT / "clip_tiny.pt"
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    metric = pyiqa.create_metric("clipiqa", device="cpu", backbone=str(path), pretrained=False)
    os.remove(raw)
    with torch.no_grad():
        score = metric(to_tensor(images)).numpy().reshape(-1)
    return dict(pred=images, score=score, tokens=tokens.numpy())


def fullref_fixture(data: Path) -> dict:
    """pyiqa's psnr/ssim as SinSR's evaluate.py creates them (Y of YCbCr), and on RGB with a
    4-pixel border crop, for noisy copies of real crops at two sizes."""
    out = {}
    options = {"y": dict(test_y_channel=True, color_space="ycbcr"),
               "rgb_crop4": dict(test_y_channel=False, crop_border=4)}
    for i, size in enumerate([(96, 128), (75, 100)]):
        gt = crops(data, size, 2, 30 + i)
        noise = np.random.default_rng(40 + i).normal(0, 6, gt.shape)
        pred = np.clip(np.round(gt + noise), 0, 255).astype(np.uint8)
        out[f"pred{i}"], out[f"gt{i}"] = pred, gt
        for name in ("psnr", "ssim"):
            for key, opts in options.items():
                metric = pyiqa.create_metric(name, device="cpu", **opts)
                out[f"{name}_{key}{i}"] = metric(to_tensor(pred), to_tensor(gt)).numpy().reshape(-1)
    return out


MUSIQ_TINY = dict(hidden_size=128, mlp_dim=256, num_heads=2, num_layers=2)  # pyiqa: 384, 1152, 6, 14


def musiq_fixture(data: Path) -> dict:
    metric = pyiqa.create_metric("musiq", device="cpu", pretrained=False, **MUSIQ_TINY)
    table = seeded(metric.net, 3)
    out = dict(names_shapes=json.dumps(table), seed=3)
    for i, size in enumerate([(96, 128), (100, 75), (250, 40)]):
        image = crops(data, size, 1, 20 + i)
        with torch.no_grad():
            out[f"pred{i}"], out[f"score{i}"] = image, metric(to_tensor(image)).numpy().reshape(-1)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = p.parse_args()
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    np.savez_compressed(OUT / "lpips_alex.npz", **lpips_fixture(data, "alex"))
    np.savez_compressed(OUT / "clipiqa.npz", **clip_fixture(data))
    np.savez_compressed(OUT / "musiq.npz", **musiq_fixture(data))
    np.savez_compressed(OUT / "fullref.npz", **fullref_fixture(data))
    print(f"pyiqa {pyiqa.__version__}, torch {torch.__version__}: fixtures in {OUT}")


if __name__ == "__main__":
    main()
