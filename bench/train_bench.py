"""Training step throughput of the v3 recipe at the released sizes (random weights).

    python -m bench.train_bench [--batch 4] [--dtype bfloat16]
        [--reference ~/ResShift --torch_python ~/torchenv/bin/python]

One step = encode HQ and bicubic-upsampled LQ with the frozen VQ, UNet forward/backward on
the residual-shift loss, decode of the predicted x0 and LPIPS (random VGG weights), AdamW
and EMA — what the reference's TrainerDifIRLPIPS does. Prints steps/s, images/s and, on a
GPU, model FLOP utilisation.
"""
import argparse
import json
from typing import Optional

import jax
import jax.numpy as jnp

from bench.common import (add_reference_args, fake_init, fake_params, machine, median_time,
                          run_reference)
from bench.sample_bench import peak_fraction
from resshift_jax import sharding
from resshift_jax.builder import restorer_from_config
from resshift_jax.models.lpips import LPIPS
from resshift_jax.train.objective import make_loss_fn
from resshift_jax.train.optim import make_optimizer
from resshift_jax.train.state import create_state
from resshift_jax.train.step import make_train_step
from configs.realsr_v3 import get_config

TRAIN_TFLOP_PER_IMAGE = 3 * 0.101 + 0.345 * 2 + 0.671 * 3  # UNet fwd+bwd, 2 encodes, decode fwd+bwd


def train_parts(config, dtype, lpips_net: Optional[str] = "vgg"):
    """(restorer, loss fn, optimizer, initial UNet params, frozen params) of `config`'s
    journal recipe (MSE + LPIPS with random `lpips_net` weights; None: MSE only), random
    weights."""
    restorer = restorer_from_config(config, dtype)
    initial = fake_params(restorer)
    frozen = {"vq": initial["vq"]}
    lpips = None if lpips_net is None else LPIPS(net=lpips_net, dtype=dtype)
    if lpips is not None:
        image = jnp.zeros((1, 64, 64, 3))
        frozen["lpips"] = fake_init(lpips, image, image)
    loss = make_loss_fn(restorer, mse_coef=1.0, lpips_coef=float(lpips is not None),
                        lpips_module=lpips)
    return restorer, loss, make_optimizer(config.train), initial["unet"], frozen


def train_program(config, parts, batch: int):
    """(jitted step, state, batch arrays, frozen) at global `batch`, replicated on the mesh."""
    restorer, loss, optimizer, params, frozen = parts
    gt = int(config.data.train.gt_size)
    key = jax.random.key(0)
    hq = jax.random.uniform(key, (batch, gt, gt, 3), minval=-1, maxval=1)
    lq = jax.random.uniform(key, (batch, gt // restorer.sf, gt // restorer.sf, 3),
                            minval=-1, maxval=1)
    mesh = sharding.make_mesh()
    rep = sharding.replicated(mesh)
    state = jax.jit(lambda p: create_state(p, optimizer, 0), out_shardings=rep)(params)
    step = jax.jit(make_train_step(loss, optimizer, ema_rate=0.999), donate_argnums=0,
                   out_shardings=(rep, rep))
    return (step, state, sharding.global_batch({"hq": hq, "lq": lq}, mesh),
            jax.device_put(frozen, rep))


def step_time(step, state, batch_arrays, frozen, iters: int) -> float:
    """Median seconds of `step` (donating its state) over `iters` steps after one warm-up."""
    box = [state]

    def run():
        box[0], metrics = step(box[0], batch_arrays, frozen)
        jax.block_until_ready(metrics)
    return median_time(run, iters=iters)


def jax_step_time(batch: int, dtype, iters: int) -> float:
    config = get_config()  # the released v3 sizes
    parts = train_parts(config, dtype)
    return step_time(*train_program(config, parts, batch), iters)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--iters", type=int, default=3)
    add_reference_args(parser)
    args = parser.parse_args()
    t = jax_step_time(args.batch, getattr(jnp, args.dtype), args.iters)
    ref = (run_reference(args.torch_python, args.reference, "train", batch=args.batch,
                         threads=args.threads, iters=args.iters)["train_step"]
           if args.reference else None)
    frac = peak_fraction(args.batch / t * TRAIN_TFLOP_PER_IMAGE / 1.42)
    print(f"# train_bench on {machine()}, batch {args.batch}, {args.dtype}")
    print(f"jax: {t:.3f} s/step, {args.batch / t:.3f} images/s"
          + (f"; reference: {ref:.3f} s/step, {args.batch / ref:.3f} images/s, "
             f"jax/reference images/s = {ref / t:.2f}" if ref else "")
          + (f"; MFU {frac:.1%}" if frac is not None else ""))
    print(json.dumps({"jax_step_s": t, "reference_step_s": ref, "batch": args.batch}))


if __name__ == "__main__":
    main()
