"""Look at what the model will see: a grid of HQ | LQ (upsampled, nearest) [| mask] rows.

    python -m resshift_jax.data.preview --config configs/realsr_v3.py --out grid.png [--n 8]
"""
import pathlib
import sys

import numpy as np
from absl import app, flags
from PIL import Image

from resshift_jax import config_file, folders

MAX_EXAMPLES = 64
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

config_file.DEFINE_config_file("config", "configs/*.py experiment", lock_config=False)
flags.DEFINE_string("out", None, f"image file to write ({', '.join(SUFFIXES)})")
flags.DEFINE_integer("n", 8, f"examples, one row each (1..{MAX_EXAMPLES})", lower_bound=1,
                     upper_bound=MAX_EXAMPLES)
flags.DEFINE_integer("seed", 0, "pipeline seed (>= 0)", lower_bound=0)
flags.DEFINE_bool("overwrite", False, "replace an existing --out")
flags.mark_flags_as_required(["config", "out"])
FLAGS = flags.FLAGS


def grid(batch: dict) -> np.ndarray:
    """uint8 image: one row per example, HQ then LQ (nearest-upsampled) then mask."""
    hq = batch["hq"]
    scale = hq.shape[1] // batch["lq"].shape[1]
    cols = [hq, np.repeat(np.repeat(batch["lq"], scale, 1), scale, 2)]
    if "mask" in batch:
        cols.append(np.repeat(batch["mask"], 3, -1))
    rows = np.concatenate(cols, axis=2)
    return np.round((np.concatenate(list(rows), axis=0) * 0.5 + 0.5).clip(0, 1) * 255).astype(np.uint8)


def check_out(out: pathlib.Path, overwrite: bool) -> None:
    """FolderError unless `out` is a new image file (or `overwrite`) in a writable folder."""
    if out.is_dir():
        raise folders.FolderError(f"--out {out}: is a folder; give an image file")
    if out.suffix.lower() not in SUFFIXES:
        raise folders.FolderError(f"--out {out}: unknown image type; end it in "
                                  f"{', '.join(SUFFIXES)}")
    if out.exists() and not overwrite:
        raise folders.FolderError(f"{out} exists; pass --overwrite to replace it")
    folders.check_writable(out.parent, "--out file's folder")


def main(argv):
    del argv
    from resshift_jax.data.pipeline import make_train_iterator
    from resshift_jax.data.sources import DataError
    out = pathlib.Path(FLAGS.out)
    try:
        check_out(out, FLAGS.overwrite)
        batch = next(make_train_iterator(FLAGS.config.data.train, per_host_batch=FLAGS.n,
                                         seed=FLAGS.seed, sf=int(FLAGS.config.sf)))
    except (DataError, folders.FolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    Image.fromarray(grid(batch)).save(out)
    print(f"wrote {out}: {FLAGS.n} examples, HQ {batch['hq'].shape[1:3]}, LQ {batch['lq'].shape[1:3]}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=config_file.parse_flags)
