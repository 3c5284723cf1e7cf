"""UNet forward and VQ encode/decode at the released v3 sizes: JAX, and the reference.

    python -m bench.forward_bench [--batch 1] [--dtype float32|bfloat16]
        [--reference ~/ResShift --torch_python ~/torchenv/bin/python]

Random weights (timing does not depend on their values): a 64x64x3 latent through the
v3 UNet, a 256x256 image through the f4 VQ encoder, the latent through its decoder.
"""
import argparse
import json

import jax
import jax.numpy as jnp

from bench.common import add_reference_args, machine, median_time, released_params, run_reference
from resshift_jax.convert.loading import build_model


def jax_times(batch: int, size: int, dtype, iters: int) -> dict:
    unet = build_model("unet", released_params("resshift_realsrx4_s4_v3.pth"), dtype=dtype)
    vq = build_model("vq", released_params("autoencoder_vq_f4.pth"), dtype=dtype)
    key = jax.random.key(0)
    lq = jax.random.uniform(key, (batch, size, size, 3), minval=-1, maxval=1)
    hq = jax.random.uniform(key, (batch, 4 * size, 4 * size, 3), minval=-1, maxval=1)
    vq_params = jax.jit(vq.init)(key, hq[:1])["params"]
    z = jax.jit(lambda p, x: vq.apply({"params": p}, x, method="encode"))(vq_params, hq)
    t = jnp.zeros((batch,), jnp.int32)
    unet_params = jax.jit(unet.init)(key, z[:1], t[:1], lq[:1])["params"]
    fwd = jax.jit(lambda p, x, t, lq: unet.apply({"params": p}, x, t, lq=lq))
    enc = jax.jit(lambda p, x: vq.apply({"params": p}, x, method="encode"))
    dec = jax.jit(lambda p, z: vq.apply({"params": p}, z, method="decode"))
    return {
        "unet_forward": median_time(lambda: fwd(unet_params, z, t, lq).block_until_ready(),
                                    iters=iters),
        "vq_encode": median_time(lambda: enc(vq_params, hq).block_until_ready(), iters=iters),
        "vq_decode": median_time(lambda: dec(vq_params, z).block_until_ready(), iters=iters),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=64, help="LQ / latent size")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--iters", type=int, default=3)
    add_reference_args(parser)
    args = parser.parse_args()
    ours = jax_times(args.batch, args.size, getattr(jnp, args.dtype), args.iters)
    ref = (run_reference(args.torch_python, args.reference, "forward", batch=args.batch,
                         size=args.size, threads=args.threads, iters=args.iters)
           if args.reference else {})
    print(f"# forward_bench on {machine()}, batch {args.batch}, {args.dtype}")
    print(f"{'op':14s} {'jax s':>9s} {'torch s':>9s} {'torch/jax':>9s}")
    for op, t in ours.items():
        r = ref.get(op)
        print(f"{op:14s} {t:9.4f} " + (f"{r:9.4f} {r / t:9.2f}" if r else f"{'-':>9s} {'-':>9s}"))
    print(json.dumps({"jax": ours, "reference": ref}))


if __name__ == "__main__":
    main()
