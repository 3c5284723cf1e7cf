"""A recipe's training step as train.py runs it on a TPU slice or a multi-GPU host, compiled
here without one: the memory each device would hold, data parallel or FSDP.

    python -m bench.pod_compile [--config realsr_v3] [--targets v5e:2x4,h200x8]
        [--fsdp false,true] [--microbatch 12,6] [--batch 96]

A target is a TPU topology (`v5e:2x4` is a v5e-8 slice, `v6e:2x4` a v6e-8; needs libtpu,
`pip install 'jax[tpu]==JAX_VERSION'`) or `h200xN`, N H200s of one host
(bench/h200_target.txtpb; needs JAX's CUDA plugin). The program is train.py's own step
(`train.loop.jit_train_step`, the state laid out by `train.loop.state_layout`) over a mesh of
the target's compile-only devices: the recipe's global batch and per-device microbatch,
bf16, MSE + LPIPS-VGG, random weights. Nothing runs and nothing is autotuned. Run it with
JAX_PLATFORMS=cpu. Results: docs/benchmarks.md.
"""
import argparse
import dataclasses
import importlib
import time

import jax
import jax.numpy as jnp

from bench import cross_compile
from bench.common import program_bytes
from bench.train_bench import train_parts
from resshift_jax import sharding
from resshift_jax.train.loop import jit_train_step, state_layout

GIB = 2 ** 30
TPU_HBM_GIB = {"TPU v4": 32, "TPU v5 lite": 16, "TPU v5": 95, "TPU v6 lite": 32}  # per chip


@dataclasses.dataclass
class Row:
    target: str
    devices: int
    batch: int          # global
    microbatch: int     # per device
    slices: int         # microbatches per step
    fsdp: bool
    argument_gib: float  # per device: state, batch, frozen weights
    temp_gib: float
    total_gib: float    # arguments + outputs + temporaries - donated
    compile_s: float


def target_devices(name: str) -> tuple:
    """(compile-only devices, memory per device in GiB) of `name`."""
    if name.startswith("h200x"):
        return (cross_compile.target_devices(int(name[len("h200x"):])),
                cross_compile.target_memory_bytes() / GIB)
    from jax.experimental import topologies
    devices = topologies.get_topology_desc(name, "tpu").devices
    return devices, TPU_HBM_GIB.get(devices[0].device_kind)


def _placed(tree, shardings):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        tree, shardings)


def trace_step(config, devices, *, lpips_net="vgg", dtype=jnp.bfloat16):
    """(traced step, microbatches per step): `config`'s training step over a mesh of `devices`,
    traced from shapes alone."""
    tc = config.train
    restorer, loss_fn, optimizer, params, frozen = train_parts(config, dtype, lpips_net)
    mesh = sharding.make_mesh(devices)
    microbatch = int(tc.get("microbatch") or tc.batch)
    slices = sharding.check_batch(int(tc.batch), microbatch, mesh)
    _, state, state_shardings = state_layout(tc, jax.eval_shape(lambda: params), optimizer, mesh)
    step = jit_train_step(tc, loss_fn, optimizer, mesh, state_shardings, slices)
    gt, batch = int(config.data.train.gt_size), int(tc.batch)
    images = {"hq": jax.ShapeDtypeStruct((batch, gt, gt, 3), jnp.float32),
              "lq": jax.ShapeDtypeStruct((batch, gt // restorer.sf, gt // restorer.sf, 3),
                                         jnp.float32)}
    args = (_placed(state, state_shardings),
            _placed(images, {k: sharding.data_sharding(mesh) for k in images}),
            _placed(jax.eval_shape(lambda: frozen), jax.tree.map(
                lambda _: sharding.replicated(mesh), frozen)))
    return step.trace(*args), slices


def compile_step(config, devices, *, target: str, lpips_net="vgg", dtype=jnp.bfloat16) -> Row:
    """Compile `config`'s training step over a mesh of `devices` from shapes alone."""
    start = time.perf_counter()
    traced, slices = trace_step(config, devices, lpips_net=lpips_net, dtype=dtype)
    compiled = traced.lower().compile()
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    tc, batch = config.train, int(config.train.batch)
    microbatch = int(tc.get("microbatch") or tc.batch)
    return Row(target=target, devices=len(devices), batch=batch,
               microbatch=min(microbatch, batch // len(devices)), slices=slices,
               fsdp=bool(tc.get("fsdp", False)),
               argument_gib=memory.argument_size_in_bytes / GIB,
               temp_gib=memory.temp_size_in_bytes / GIB,
               total_gib=program_bytes(compiled) / GIB, compile_s=seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="realsr_v3", help="a configs module")
    parser.add_argument("--targets", default="v5e:2x4,h200x8")
    parser.add_argument("--fsdp", default="false,true")
    parser.add_argument("--microbatch", default="", help="per device (default: the config's)")
    parser.add_argument("--batch", type=int, help="global (default: the config's)")
    args = parser.parse_args()
    print("| target | devices | batch | microbatch / device | slices | FSDP | arguments GiB | "
          "temporaries GiB | GiB per device | of | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.targets.split(","):
        devices, memory = target_devices(name)
        for microbatch in [int(m) for m in args.microbatch.split(",") if m] or [None]:
            for fsdp in (f.strip() == "true" for f in args.fsdp.split(",")):
                config = importlib.import_module(f"configs.{args.config}").get_config()
                config.train.fsdp = fsdp
                if microbatch:
                    config.train.microbatch = microbatch
                if args.batch:
                    config.train.batch = args.batch
                r = compile_step(config, devices, target=f"{name} ({devices[0].device_kind})")
                print(f"| {r.target} | {r.devices} | {r.batch} | {r.microbatch} | {r.slices} | "
                      f"{'yes' if r.fsdp else 'no'} | {r.argument_gib:.2f} | {r.temp_gib:.2f} | "
                      f"{r.total_gib:.2f} | {f'{memory:.0f}' if memory else '?'} | {r.compile_s:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
