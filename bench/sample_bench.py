"""The whole compiled chain (bicubic, encode, 4 UNet steps, decode) at the v3 sizes.

    python -m bench.sample_bench [--batches 1,8,32] [--dtypes float32,bfloat16]
        [--reference ~/ResShift --torch_python ~/torchenv/bin/python]

Random weights, 64x64 LQ -> 256x256. Prints latency per batch and images/s; with
`--reference` the PyTorch reference's p_sample_loop on the same inputs and the ratio.
On a GPU it also prints the fraction of bf16 peak reached (1.42 TFLOP per image).
"""
import argparse
import json

import jax
import jax.numpy as jnp

from bench.common import add_reference_args, fake_params, machine, median_time, run_reference
from configs.realsr_v3 import get_config
from resshift_jax.builder import restorer_from_config
from resshift_jax.sampling import make_restore_fn

TFLOP_PER_IMAGE = 1.42
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def chain_args(params: dict, batch: int, size: int) -> tuple:
    """(params, lq, mask, key) for a restore fn: a random `batch` x size x size LQ batch."""
    key = jax.random.key(0)
    lq = jax.random.uniform(key, (batch, size, size, 3), minval=-1, maxval=1)
    return params, lq, None, key


def chain_time(batch: int, size: int, dtype, iters: int) -> float:
    restorer = restorer_from_config(get_config(), dtype)  # the released v3 sizes
    fn = make_restore_fn(restorer)
    args = chain_args(fake_params(restorer), batch, size)
    return median_time(lambda: fn(*args).block_until_ready(), iters=iters)


def peak_fraction(images_per_s: float):
    kind = jax.devices()[0].device_kind
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in kind), None)
    return None if peak is None else images_per_s * TFLOP_PER_IMAGE / peak


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=3)
    add_reference_args(parser)
    args = parser.parse_args()
    print(f"# sample_bench on {machine()}, {args.size}x{args.size} -> {4 * args.size}")
    print(f"{'dtype':9s} {'batch':>5s} {'s/batch':>9s} {'img/s':>8s} {'torch s':>9s} "
          f"{'torch/jax':>9s} {'bf16 peak':>9s}")
    rows = []
    for dtype in args.dtypes.split(","):
        for batch in map(int, args.batches.split(",")):
            t = chain_time(batch, args.size, getattr(jnp, dtype), args.iters)
            ref = None
            if args.reference and dtype == "float32":
                ref = run_reference(args.torch_python, args.reference, "sample", batch=batch,
                                    size=args.size, threads=args.threads,
                                    iters=args.iters)["chain"]
            frac = peak_fraction(batch / t) if dtype == "bfloat16" else None
            rows.append({"dtype": dtype, "batch": batch, "seconds": t, "reference": ref})
            print(f"{dtype:9s} {batch:5d} {t:9.4f} {batch / t:8.3f} "
                  + (f"{ref:9.3f} {ref / t:9.2f} " if ref else f"{'-':>9s} {'-':>9s} ")
                  + (f"{frac:9.1%}" if frac is not None else f"{'-':>9s}"))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
