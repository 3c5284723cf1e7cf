"""The nearest codebook entry of every latent position, in row blocks that fit a memory budget.

The distances are positions x codebook entries: with the v3 VQ's 8192 entries, the 262,144
latent positions of a 2048 x 2048 tile (or of a batch of 64 images of 256 x 256) make an
8 GiB float32 matrix, which the reference builds whole. A position's argmin needs only its
own row, so rows are taken in balanced blocks of at most `budget` bytes of distances (at
least MIN_ROWS rows); each row's distances and argmin are the one-shot computation's.
Budgets as models/attention.py's: None stages the CPU's and the accelerators' plans with
`jax.lax.platform_dependent`, and the compiling platform picks its own.
"""
import functools
from typing import Optional

import jax
import jax.numpy as jnp

from resshift_jax.models.attention import ACCELERATOR_BUDGET, CPU_BUDGET, MIN_ROWS


def block_rows(positions: int, entries: int, budget: int) -> int:
    """Rows per block: the fewest balanced blocks whose float32 distances fit `budget`."""
    rows = max(MIN_ROWS, budget // (4 * entries))
    if rows >= positions:
        return positions
    blocks = -(-positions // rows)
    return -(-positions // blocks)


def _argmin_distance(flat, codebook):
    """Index of the nearest entry per row: |z|^2 + |e|^2 - 2 z.e as the reference, the
    product at full precision even where the backend's default is TF32/bf16, since near
    ties decide the index."""
    cross = jnp.matmul(flat, codebook.T, precision=jax.lax.Precision.HIGHEST)
    dist = jnp.sum(flat ** 2, axis=1, keepdims=True) + jnp.sum(codebook ** 2, axis=1) - 2.0 * cross
    return jnp.argmin(dist, axis=1)


def _blocked(flat, codebook, rows: int):
    n = flat.shape[0]
    if rows >= n:
        return _argmin_distance(flat, codebook)
    blocks = -(-n // rows)
    padded = jnp.pad(flat, ((0, blocks * rows - n), (0, 0))).reshape(blocks, rows, -1)
    indices = jax.lax.map(lambda block: _argmin_distance(block, codebook), padded)
    return indices.reshape(-1)[:n]


def nearest_codes(flat, codebook, budget: Optional[int] = None):
    """(N,) int indices of the nearest rows of `codebook` (K, D) to `flat` (N, D), float32,
    in blocks of at most `budget` bytes of distances (None: the compiling platform's)."""
    flat, codebook = jax.lax.stop_gradient((flat, codebook))  # an index has no gradient
    n, k = flat.shape[0], codebook.shape[0]
    if budget is not None:
        return _blocked(flat, codebook, block_rows(n, k, budget))
    on_cpu, elsewhere = block_rows(n, k, CPU_BUDGET), block_rows(n, k, ACCELERATOR_BUDGET)
    if on_cpu == elsewhere:
        return _blocked(flat, codebook, on_cpu)
    return jax.lax.platform_dependent(
        flat, codebook, cpu=functools.partial(_blocked, rows=on_cpu),
        default=functools.partial(_blocked, rows=elsewhere))
