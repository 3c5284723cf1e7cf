"""Compile the GPU run's programs for an NVIDIA H200 on a machine without one.

XLA's GPU compiler runs without the GPU when JAX's CUDA plugin is installed: a compile-only
device described by a target file (`h200_target.txtpb`, XLA's H100 description with the
H200's memory) takes a program through every GPU pass (cuDNN convolutions, Triton fusions,
buffer assignment) and gives its memory analysis, the bytes the GPU would hold. Nothing
runs and nothing is autotuned: convolution algorithms and their workspaces may differ on
the GPU itself. `python -m bench.device_suite --cross_compile` (bench/README.md).
"""
import functools
import pathlib
import re

H200_TARGET = pathlib.Path(__file__).with_name("h200_target.txtpb")
MEM_FRACTION = 0.92  # of the GPU's memory that bench/device_run.sh gives JAX
PLUGIN_HINT = "pip install 'jax[cuda13]==JAX_VERSION' (JAX's CUDA plugin; no GPU needed)"


def target_memory_bytes(target: pathlib.Path = H200_TARGET) -> int:
    """The device memory a target file describes (`device_memory_size`)."""
    found = re.search(r"device_memory_size:\s*(\d+)", target.read_text())
    if not found:
        raise ValueError(f"{target}: no device_memory_size")
    return int(found.group(1))


def target_devices(count: int, target: pathlib.Path = H200_TARGET) -> list:
    """`count` compile-only CUDA devices of one host as `target` describes them; a one-line
    error without the CUDA plugin."""
    import jax
    from jax.experimental import topologies
    try:
        topology = topologies.get_topology_desc(
            platform="cuda", target_config=target.read_text(), topology=f"1x1x{count}")
    except Exception as err:  # noqa: BLE001  (no plugin: jax names no single type for it)
        raise RuntimeError(f"cannot compile for CUDA here ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:120]}); "
                           + PLUGIN_HINT.replace("JAX_VERSION", jax.__version__)) from None
    return topology.devices


@functools.lru_cache(maxsize=None)
def target_device(target: pathlib.Path = H200_TARGET):
    """One compile-only CUDA device as `target` describes it (`target_devices`)."""
    return target_devices(1, target)[0]


def abstract_on(args, device):
    """`args` as shapes and dtypes placed on `device` (None leaves stay None)."""
    import jax
    sharding = jax.sharding.make_single_device_sharding(device)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), args)


def compile_for(jitted, args, device, donate_argnums=()):
    """(lowered, compiled): the function `jitted` wraps (jax.jit's `__wrapped__`) jitted again
    with `donate_argnums` and compiled for `device` from the shapes of `args`, so a program
    built for this machine's devices compiles for another platform's."""
    import jax
    fn = jax.jit(jitted.__wrapped__, donate_argnums=donate_argnums)
    lowered = fn.trace(*abstract_on(args, device)).lower()
    return lowered, lowered.compile()


def fits(program_bytes: int, target: pathlib.Path = H200_TARGET) -> tuple:
    """(fits, GiB available): whether a program's bytes fit the share of the target's
    memory that the GPU run gives JAX."""
    available = MEM_FRACTION * target_memory_bytes(target)
    return program_bytes <= available, available / 2 ** 30
