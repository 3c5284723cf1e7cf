"""SinSR's one-step student against ResShift's 4- and 15-step chains, same run, released sizes.

    python -m bench.onestep_bench [--batch 1] [--size 64] [--dtype float32] [--iters 3]

Random weights; the v1/v3 UNet (SinSR's student is the same network) and the f4 autoencoder,
64x64 LQ -> 256x256, each row the whole compiled program (bicubic, encode, chain, decode):
`onestep` (1 UNet call at t = T-1, SinSR), `ddpm` over the v3 schedule (4 calls) and over
the v1 schedule (15 calls, as SinSR's teacher), and the teacher's `ddim` chain (15 calls).
"""
import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp

from bench.common import machine, median_time, released_params
from configs import realsr_v1, realsr_v3
from resshift_jax.builder import schedule_from_config
from resshift_jax.convert.loading import build_model
from resshift_jax.sampling import Restorer, make_restore_fn

ROWS = (("onestep", realsr_v1, "onestep"), ("4-step ddpm (v3)", realsr_v3, "ddpm"),
        ("15-step ddpm (v1)", realsr_v1, "ddpm"), ("15-step ddim (v1)", realsr_v1, "ddim"))


def chain_restorer(unet, vq, config, sampler: str) -> Restorer:
    """The x4 restorer of `unet` and `vq` over `config`'s (a configs module) schedule."""
    schedule = schedule_from_config(config.get_config())
    return dataclasses.replace(Restorer(unet=unet, vq=vq, schedule=schedule, sf=4),
                               sampler=sampler)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    dtype = getattr(jnp, args.dtype)
    unet = build_model("unet", released_params("resshift_realsrx4_s4_v3.pth"), dtype=dtype)
    assert released_params("resshift_realsrx4_s15_v1.pth, _v2.pth") == released_params(
        "resshift_realsrx4_s4_v3.pth")
    vq = build_model("vq", released_params("autoencoder_vq_f4.pth"), dtype=dtype)
    key = jax.random.key(0)
    size = args.size
    lq = jax.random.uniform(key, (args.batch, size, size, 3), minval=-1, maxval=1)
    params = {
        "vq": jax.jit(vq.init)(key, jnp.zeros((1, 4 * size, 4 * size, 3)))["params"],
        "unet": jax.jit(unet.init)(key, jnp.zeros((1, size, size, 3)), jnp.zeros((1,), jnp.int32),
                                   lq[:1])["params"],
    }
    print(f"# onestep_bench on {machine()}, batch {args.batch}, {size}x{size} -> {4 * size}, "
          f"{args.dtype}")
    print(f"{'chain':18s} {'UNet calls':>10s} {'s/batch':>9s} {'img/s':>8s} {'vs onestep':>10s}")
    rows = []
    for name, config, sampler in ROWS:
        restorer = chain_restorer(unet, vq, config, sampler)
        fn = make_restore_fn(restorer)
        t = median_time(lambda: fn(params, lq, None, key).block_until_ready(), iters=args.iters)
        rows.append({"chain": name, "calls": restorer.num_steps, "seconds": t})
        print(f"{name:18s} {restorer.num_steps:10d} {t:9.3f} {args.batch / t:8.3f} "
              f"{t / rows[0]['seconds']:9.2f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
