"""Convert a released `.pth` into a `.safetensors` file that loads without PyTorch or the .pth.

    python -m resshift_jax.convert weights/resshift_realsrx4_s4_v3.pth v3_unet.safetensors \
        --kind unet --config configs/realsr_v3.py
    python -m resshift_jax.convert weights/autoencoder_vq_f4.pth vq_f4.safetensors \
        --kind vq --config configs/realsr_v3.py

The architecture comes from the config (`config.model` for unet, `config.autoencoder.params`
for vq) or, with `--arch JSON`, from a JSON file of the reference's params (or the `.json`
an earlier conversion wrote beside its output).
"""
import argparse
import json
import pathlib
import sys

from resshift_jax import config_file
from resshift_jax.convert.loading import KINDS, build_model, load_params, save_converted
from resshift_jax.convert.pth import CheckpointError


def arch_from_json(path: str, kind: str) -> dict:
    """The reference architecture params in a JSON file, plain or as a conversion's sidecar
    ({"kind", "params"}); any problem is one ConfigError line."""
    try:
        arch = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise config_file.ConfigError(f"{path}: no such architecture file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise config_file.ConfigError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(arch, dict):
        raise config_file.ConfigError(f"{path}: expected a JSON object of architecture params, "
                                      f"got {type(arch).__name__}")
    if set(arch) == {"kind", "params"}:  # a sidecar `save_converted` wrote
        if arch["kind"] != kind:
            raise config_file.ConfigError(f"{path}: describes {arch['kind']} weights, not {kind}")
        arch = arch["params"]
    return arch


def arch_from_config(config_path: str, kind: str) -> dict:
    """The reference architecture params of `kind` from a `configs/*.py` file."""
    config = config_file.load(config_path)
    if kind == "vq" and not config.get("autoencoder"):
        raise config_file.ConfigError(f"{config_path}: has no autoencoder (a pixel-space model)")
    return (config.model if kind == "unet" else config.autoencoder.params).to_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resshift_jax.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="PyTorch checkpoint (.pth)")
    parser.add_argument("dst", help="output .safetensors file (a .json with the config is written beside)")
    parser.add_argument("--kind", choices=KINDS, required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="configs/*.py giving the architecture")
    source.add_argument("--arch", help="JSON file with the reference's architecture params")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dst and its .json")
    args = parser.parse_args(argv)

    dst = pathlib.Path(args.dst)
    if dst.suffix != ".safetensors":
        parser.error(f"{dst}: output must end in .safetensors")
    if args.arch and dst.with_suffix(".json").resolve() == pathlib.Path(args.arch).resolve():
        parser.error(f"{dst}: its .json would replace the --arch file {args.arch}; "
                     "choose another output name")
    for path in (dst, dst.with_suffix(".json")):
        if path.exists() and not args.overwrite:
            parser.error(f"{path}: exists; pass --overwrite to replace it")
    if dst.parent.exists() and not dst.parent.is_dir():
        parser.error(f"{dst.parent}: is a file, not a folder")
    if pathlib.Path(args.src).is_dir():
        parser.error(f"{args.src}: is a folder; give the .pth file")
    if not pathlib.Path(args.src).is_file():
        parser.error(f"{args.src}: no such file")
    try:
        arch = (arch_from_config(args.config, args.kind) if args.config
                else arch_from_json(args.arch, args.kind))
        model = build_model(args.kind, arch)
    except config_file.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TypeError as e:  # a parameter the architecture does not have
        print(f"error: {args.arch or args.config}: not {args.kind} architecture params ({e})",
              file=sys.stderr)
        return 2
    try:
        params = load_params(args.kind, args.src, model)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    save_converted(dst, args.kind, arch, params)
    print(f"wrote {dst} and {dst.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
