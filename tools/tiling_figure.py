"""docs/tiling_blend.png: one photograph tiled with `--blend average` and `--blend gaussian`.

    python tools/tiling_figure.py [--out docs/tiling_blend.png]

The per-tile "network" is a bicubic x4 upsample whose brightness shifts with each tile's
own mean, standing in for a diffusion model that treats every tile a little differently
(its own noise, its own context). Average blending (the reference) shows a step at every
tile border; Gaussian cross-fading does not. Tile borders are marked by red ticks on the strip
below each result, which shows the horizontal gradient magnitude (where a seam is a line).
"""
import argparse

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

from resshift_jax.resize import bicubic_upsample
from resshift_jax.tiling import chop_and_run, patch_starts

SF, CHOP, STRIDE = 4, 48, 40


def tile_net(tiles: np.ndarray, ids) -> np.ndarray:
    up = np.asarray(bicubic_upsample(tiles, SF))
    return up + 0.6 * (tiles.mean(axis=(1, 2, 3), keepdims=True) - 0.5)


def panel(result: np.ndarray, starts) -> Image.Image:
    rgb = np.clip(result, 0, 1)
    grad = np.abs(np.diff(rgb.mean(-1), axis=1, prepend=rgb.mean(-1)[:, :1]))
    grad = np.clip(grad / np.percentile(grad, 99.5), 0, 1)
    img = Image.fromarray(np.round(np.concatenate([rgb, np.repeat(grad[..., None], 3, -1)],
                                                  axis=0) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    h = rgb.shape[0]
    for s in starts[1:]:
        for x in (s * SF, (s - STRIDE + CHOP) * SF):
            draw.line([(x, h), (x, h + 12)], fill=(255, 0, 0), width=2)
    return img


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/tiling_blend.png")
    args = parser.parse_args()
    photo = data.astronaut()[40:136, 150:310].astype(np.float32) / 255  # 96x160 "LQ"
    starts = patch_starts(photo.shape[1], CHOP, STRIDE)
    panels = [panel(chop_and_run(photo, tile_net, chop_size=CHOP, chop_stride=STRIDE, sf=SF,
                                 blend=mode), starts) for mode in ("average", "gaussian")]
    width = sum(p.width for p in panels) + 8
    canvas = Image.new("RGB", (width, panels[0].height + 20), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for mode, p in zip(("--blend average (reference)", "--blend gaussian (default)"), panels):
        draw.text((x + 4, 4), mode, fill="black")
        canvas.paste(p, (x, 20))
        x += p.width + 8
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
