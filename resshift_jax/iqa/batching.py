"""Padding batches to few shapes, so a folder of mixed sizes compiles few programs."""
import numpy as np


def batch_bucket(n: int, batch_size: int) -> int:
    """The padded batch size for n images: the next power of two, at most batch_size."""
    size = 1
    while size < n:
        size *= 2
    return max(min(size, batch_size), n)


def pad_batch(arrays: list, size: int) -> np.ndarray:
    """Stack equally shaped arrays and repeat the last one up to `size` entries."""
    return np.stack(list(arrays) + [arrays[-1]] * (size - len(arrays)))


def round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def pad_to(arrays: list, shape: tuple, size: int) -> np.ndarray:
    """(size, *shape) zero-padded stack of arrays no larger than `shape` (top-left aligned)."""
    out = np.zeros((size,) + tuple(shape), np.float32)
    for i, a in enumerate(arrays):
        out[(i,) + tuple(slice(0, d) for d in a.shape)] = a
    return out
