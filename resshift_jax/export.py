"""Export the whole restoration chain as serialized programs: serving without the model code.

    python -m resshift_jax.export --task realsr --version v3 --platforms cpu,cuda,tpu --out DIR
    python -m resshift_jax.export --config configs/tiny_test.py --out DIR --batch_sizes 1,4

For each batch size, `jax.export` lowers upsample, encode, the reverse chain and decode
into one StableHLO program for every platform named (one serialized file carries them
all; the attention's per-platform plan is staged inside, models/attention.py). The
weights are the programs' arguments and go into one `weights.safetensors` beside them,
so new weights need no re-export of the same architecture. `manifest.json` says what the
programs take; `resshift_jax.exported` loads the folder and restores images with jax and
numpy alone (docs/export.md).
"""
import json
import math
import pathlib
import sys
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from resshift_jax import folders, tiling
from resshift_jax.sampling import Restorer, restore

FORMAT = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"


def program_name(batch: int) -> str:
    return f"restore_b{batch}.jaxexport"


def flat_weights(params: dict) -> dict:
    """{"unet": tree, "vq": tree} -> {"unet/a/b": float32 array}: the programs' weights."""
    return {"/".join(k): np.asarray(v, np.float32)
            for k, v in traverse_util.flatten_dict(params).items()}


def chain_program(restorer: Restorer, has_mask: bool, noise_canvas=None):
    """fn(weights, lq, key_data[, mask]) -> restored batch, what every exported file computes.

    `weights` as `flat_weights`; `lq` (B, L, L, 3) float32 in [-1, 1]; `key_data` (B, 2)
    uint32, `jax.random.key_data` of one threefry key per example; `mask` (B, L, L, 1) in
    {-1, 1} (1 = unknown). Returns (B, sf L, sf L, 3) float32 in [-1, 1]. A key's noise is
    drawn on a `noise_canvas` x `noise_canvas` LQ canvas (>= L) and cropped, as sample.py
    draws it on its tile canvas.
    """
    canvas = None if noise_canvas is None else (noise_canvas, noise_canvas)

    def fn(weights, lq, key_data, mask=None):
        params = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in weights.items()})
        keys = jax.random.wrap_key_data(key_data, impl="threefry2x32")
        return restore(restorer, params, lq, mask=mask, key=keys, noise_canvas=canvas)
    if has_mask:
        return fn
    return lambda weights, lq, key_data: fn(weights, lq, key_data)


def export_chain(restorer: Restorer, params: dict, *, size: int, batch_sizes: Sequence[int],
                 platforms: Sequence[str], has_mask: bool, noise_canvas=None) -> dict:
    """{batch size: jax.export.Exported} of the chain on (batch, size, size) LQ inputs.

    `params` may be abstract (`jax.eval_shape`): only shapes are needed.
    """
    weights = {"/".join(k): jax.ShapeDtypeStruct(v.shape, jnp.float32)
               for k, v in traverse_util.flatten_dict(params).items()}
    fn = jax.jit(chain_program(restorer, has_mask, noise_canvas))
    exported = {}
    for batch in batch_sizes:
        args = [weights, jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32),
                jax.ShapeDtypeStruct((batch, 2), jnp.uint32)]
        if has_mask:
            args.append(jax.ShapeDtypeStruct((batch, size, size, 1), jnp.float32))
        exported[batch] = jax.export.export(fn, platforms=tuple(platforms))(*args)
    return exported


def write_export(out_dir, restorer: Restorer, params: dict, *, size: int,
                 batch_sizes: Sequence[int], platforms: Sequence[str], has_mask: bool,
                 mask_back: bool, stride: int, blend: str, seed: int, dtype: str,
                 source: dict, noise_canvas: Optional[int] = None) -> pathlib.Path:
    """Write the programs, weights and manifest into `out_dir`; returns the manifest path."""
    import safetensors.numpy
    if not 0 < stride <= size:
        raise ValueError(f"stride {stride}: need 0 < stride <= size ({size})")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exported = export_chain(restorer, params, size=size, batch_sizes=batch_sizes,
                            platforms=platforms, has_mask=has_mask, noise_canvas=noise_canvas)
    for batch, program in exported.items():
        (out / program_name(batch)).write_bytes(program.serialize())
    safetensors.numpy.save_file(flat_weights(params), str(out / WEIGHTS))
    manifest = {
        "format": FORMAT, "source": source, "sf": restorer.sf, "size": size,
        "batch_sizes": sorted(batch_sizes), "platforms": list(platforms), "dtype": dtype,
        "has_mask": has_mask, "mask_back": mask_back, "stride": stride, "blend": blend,
        "seed": seed, "noise_canvas": noise_canvas,
        "programs": {str(b): program_name(b) for b in sorted(batch_sizes)},
        "weights": WEIGHTS, "jax": jax.__version__,
        "calling_convention": "fn(weights, lq, key_data[, mask]) -> out; lq (B, size, size, 3) "
                              "and out (B, sf*size, sf*size, 3) float32 in [-1, 1]; key_data "
                              "(B, 2) uint32 threefry key data; mask (B, size, size, 1) in "
                              "{-1, 1}, 1 = unknown",
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path


def size_multiple(config) -> int:
    """What the LQ tile size must be a multiple of: the autoencoder's downsampling times the
    UNet's (its levels' strides and Swin windows), over the scale factor."""
    model = config.model
    autoencoder = config.get("autoencoder")
    vq_factor = 2 ** (len(autoencoder.params.ddconfig.ch_mult) - 1) if autoencoder else 1
    levels, window = len(model.channel_mult), int(model.get("window_size", 8))
    unet = 2 ** (levels - 1)
    for level in range(levels):
        nominal = int(model.image_size) // 2 ** level
        if nominal in model.attention_resolutions or level == levels - 1:
            unet = math.lcm(unet, 2 ** level * min(window, nominal))
    latent = vq_factor * unet
    lq_path = max(int(model.get("lq_size", model.image_size)) // int(model.image_size), 1)
    return math.lcm(latent // math.gcd(latent, int(config.sf)), lq_path)


def previous_export(out: pathlib.Path, overwrite: bool) -> list:
    """The files of an earlier export in `out` (made if missing) that `--overwrite` replaces;
    ValueError when `out` is a file or read-only, or holds files and `overwrite` is off or
    they are not an export's."""
    folders.check_writable(out, "--out folder")
    if not any(out.iterdir()):
        return []
    if not overwrite:
        raise ValueError(f"--out {out}: the folder is not empty; give a new or empty folder, "
                         "or --overwrite to replace an earlier export in it")
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        names = [*manifest["programs"].values(), manifest["weights"], MANIFEST]
        return [out / name for name in names if pathlib.Path(name).name == name]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"--out {out}: holds no earlier export (no readable {MANIFEST}); "
                         "--overwrite replaces only an export's files") from None


def _ints(text: str, flag: str) -> list:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--{flag} {text!r}: expected comma-separated integers") from None
    if not values or min(values) < 1:
        raise ValueError(f"--{flag} {text!r}: values must be >= 1")
    return values


def check_tiles(size: int, stride: int, multiple: int) -> None:
    """ValueError unless `size` is a positive multiple of `multiple` and 0 < stride <= size."""
    if size < 1 or size % multiple:
        raise ValueError(f"--size {size}: this model needs a positive multiple of {multiple} "
                         "(its autoencoder's and UNet's downsampling)")
    if not 0 < stride <= size:
        raise ValueError(f"--stride {stride}: need 0 < stride <= size ({size})")


def main(argv):
    del argv
    from absl import flags, logging
    from resshift_jax import builder, releases
    from resshift_jax.weights import CheckpointError, WeightsError
    f = flags.FLAGS
    if not f["verbosity"].present:  # no log line of JAX's backend probing
        logging.set_verbosity(logging.WARNING)
    platforms = [p.strip() for p in f.platforms.split(",")]
    unknown = sorted(set(platforms) - {"cpu", "cuda", "rocm", "tpu"})
    try:
        if unknown:
            raise ValueError(f"--platforms: unknown {unknown} (cpu, cuda, rocm, tpu)")
        batch_sizes = _ints(f.batch_sizes, "batch_sizes")
        stale = previous_export(pathlib.Path(f.out), f.overwrite)
        config = f.config or releases.release(f.task, f.version).get_config()
        dtype = f.dtype or config.sample.compute_dtype
        size = int(config.model.lq_size) if f.size is None else f.size
        stride = size - size // 8 if f.stride is None else f.stride
        check_tiles(size, stride, size_multiple(config))
        needs_mask = bool(config.model.get("cond_mask", False))
        restorer, params = builder.build_restorer(
            config, dtype=getattr(jnp, dtype), unet_ckpt=f.unet_ckpt, vq_ckpt=f.vq_ckpt,
            weights_dir=f.weights_dir)
        source = ({"config": "custom"} if f.config else {"task": f.task, "version": f.version})
        lq_multiple = int(config.sample.get("padding_offset") or config.model.lq_size)
        chop = builder.tile_geometry(config, f.chop_size, None if f.chop_size is None else -1)[0]
        canvas = max(size, tiling.round_up(chop, lq_multiple))
        path = write_export(
            f.out, restorer, params, size=size, batch_sizes=batch_sizes, platforms=platforms,
            has_mask=needs_mask, mask_back=bool(config.sample.get("mask_back", needs_mask)),
            stride=stride, blend=config.sample.blend,
            seed=int(config.sample.seed), dtype=dtype, source=source, noise_canvas=canvas)
        written = {path, path.parent / WEIGHTS,
                   *(path.parent / program_name(b) for b in batch_sizes)}
        for old in set(stale) - written:
            old.unlink(missing_ok=True)
    except (ValueError, CheckpointError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path.parent}: batch sizes {batch_sizes}, {size}x{size} LQ, {dtype}, "
          f"platforms {','.join(platforms)}")
    return 0


def define_flags():
    from absl import flags
    from resshift_jax import config_file, releases
    config_file.DEFINE_config_file("config", "configs/*.py of the model; default: chosen by "
                                   "--task/--version", lock_config=False)
    flags.DEFINE_enum("task", "realsr", list(releases.TASKS), "released task")
    flags.DEFINE_enum("version", "v3", list(releases.REALSR_VERSIONS), "realsr release")
    flags.DEFINE_string("out", None, "output folder, new or empty", required=True)
    flags.DEFINE_boolean("overwrite", False, "replace an earlier export in --out (only the "
                         "files its manifest lists)")
    flags.DEFINE_string("platforms", "cpu,cuda,tpu", "comma-separated: cpu, cuda, rocm, tpu")
    flags.DEFINE_string("batch_sizes", "1,8", "one program per batch size")
    flags.DEFINE_integer("size", None, "LQ tile size in pixels (default the config's lq_size)")
    flags.DEFINE_integer("stride", None, "tile stride for larger images (default 7/8 of size)")
    flags.DEFINE_integer("chop_size", None, "the sample.py --chop_size whose noise the programs "
                         "draw (default the config's): an image that fits one tile of both "
                         "comes out as sample.py --pad reference restores it")
    flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"], "compute dtype (default the "
                      "config's); weights stay float32")
    flags.DEFINE_string("unet_ckpt", None, "UNet weights (default the config's)")
    flags.DEFINE_string("vq_ckpt", None, "autoencoder weights (default the config's)")
    flags.DEFINE_string("weights_dir", "./weights", "where released weights are kept")


if __name__ == "__main__":
    from absl import app
    from resshift_jax import config_file
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=config_file.parse_flags)
