"""Look at what the model will see: a grid of HQ | LQ (upsampled, nearest) [| mask] rows.

    python -m resshift_jax.data.preview --config configs/realsr_v3.py --out grid.png [--n 8]
"""
import pathlib
import sys

import numpy as np
from absl import app, flags
from PIL import Image

from resshift_jax import config_file

config_file.DEFINE_config_file("config", "configs/*.py experiment", lock_config=False)
flags.DEFINE_string("out", None, "PNG file to write")
flags.DEFINE_integer("n", 8, "examples")
flags.DEFINE_integer("seed", 0, "pipeline seed")
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


def main(argv):
    del argv
    from resshift_jax.data.pipeline import make_train_iterator
    out = pathlib.Path(FLAGS.out)
    if out.exists() and not FLAGS.overwrite:
        print(f"error: {out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    batch = next(make_train_iterator(FLAGS.config.data.train, per_host_batch=FLAGS.n,
                                     seed=FLAGS.seed, sf=int(FLAGS.config.sf)))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid(batch)).save(out)
    print(f"wrote {out}: {FLAGS.n} examples, HQ {batch['hq'].shape[1:3]}, LQ {batch['lq'].shape[1:3]}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=config_file.parse_flags)
