"""All sharding rules: a 1-D 'data' mesh over every device of every host, the batch split
over it, and the train state either replicated (data parallel) or split over it (FSDP).

The mesh lists each process's devices together, in process order, so host p's local batch
is the contiguous rows p*B/P .. (p+1)*B/P - 1 of the global batch: N processes compute
exactly what one process with the same N devices does."""
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"  # the mesh's one axis
FSDP_MIN_SIZE = 2 ** 14  # elements; smaller leaves stay replicated under FSDP


class BatchError(ValueError):
    """A batch size that cannot be split over the devices or microbatches."""


def make_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """The 'data' mesh over `devices` (default: all), ordered by (process, device id)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(sorted(devices, key=lambda d: (d.process_index, d.id))), (AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def fsdp_spec(shape: Sequence[int], devices: int, min_size: int = FSDP_MIN_SIZE) -> P:
    """Split the largest dimension divisible by `devices` over 'data' (ZeRO-3); P() for a
    leaf under `min_size` elements or with no such dimension."""
    if devices == 1 or int(np.prod(shape)) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % devices == 0:
            return P(*((AXIS if d == dim else None) for d in range(len(shape))))
    return P()


def state_shardings(abstract_state, mesh: Mesh, *, fsdp: bool = False,
                    min_size: int = FSDP_MIN_SIZE):
    """NamedSharding of each leaf of `abstract_state` (from jax.eval_shape): all replicated,
    or with `fsdp` every large leaf (params, optimizer moments, EMA) split by `fsdp_spec`."""
    devices = mesh.shape[AXIS]
    return jax.tree.map(lambda leaf: NamedSharding(
        mesh, fsdp_spec(leaf.shape, devices, min_size) if fsdp else P()), abstract_state)


def check_batch(batch: int, microbatch: int, mesh: Mesh) -> int:
    """Number of microbatches: each device accumulates its share of the global `batch` in
    slices of `microbatch` examples (per device, as the reference's per-GPU microbatch; one
    slice when its share is no larger). Raises BatchError unless everything divides evenly."""
    devices = mesh.devices.size
    if microbatch < 1:
        raise BatchError(f"train.microbatch={microbatch}: must be at least 1")
    if batch % devices:
        raise BatchError(f"train.batch={batch} does not split over {devices} devices; use a "
                         f"multiple of {devices}")
    if batch % jax.process_count():
        raise BatchError(f"train.batch={batch} does not split over {jax.process_count()} hosts")
    share = batch // devices
    if microbatch < share and share % microbatch:
        fits = [m for m in range(1, share + 1) if share % m == 0 and m <= microbatch]
        raise BatchError(f"train.microbatch={microbatch} (examples per device at once) must "
                         f"divide the {share} each of the {devices} devices takes of "
                         f"train.batch={batch}; e.g. {fits[-1]}")
    return share // min(microbatch, share)


def global_batch(local: dict, mesh: Mesh) -> dict:
    """This host's numpy slice (rows p*B/P .. (p+1)*B/P - 1) -> global arrays sharded over
    the data axis."""
    sharding = data_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local.items()}
