"""Data parallelism over every device of every host: a 1-D mesh, batch sharded, state replicated."""
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


class BatchError(ValueError):
    """A batch size that cannot be split over the devices or microbatches."""


def make_mesh(devices: Optional[Sequence] = None) -> Mesh:
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))


def data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch(batch: int, microbatch: int, mesh: Mesh) -> int:
    """Number of microbatches; raises BatchError unless everything divides evenly."""
    devices = mesh.devices.size
    if batch % devices:
        raise BatchError(f"train.batch={batch} does not split over {devices} devices; use a "
                         f"multiple of {devices}")
    if batch % microbatch or microbatch % devices:
        raise BatchError(f"train.microbatch={microbatch} must divide train.batch={batch} and be "
                         f"a multiple of the {devices} devices")
    if batch % jax.process_count():
        raise BatchError(f"train.batch={batch} does not split over {jax.process_count()} hosts")
    return batch // microbatch


def global_batch(local: dict, mesh: Mesh) -> dict:
    """This host's numpy slice -> global arrays sharded over the data axis."""
    sharding = data_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local.items()}
