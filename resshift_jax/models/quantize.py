"""The nearest codebook entry of every latent position, in row blocks that fit a memory budget.

The distances are positions x codebook entries: with the v3 VQ's 8192 entries, the 262,144
latent positions of a 2048 x 2048 tile (or of a batch of 64 images of 256 x 256) make an
8 GiB float32 matrix, which the reference builds whole. A position's argmin needs only its
own row, so the same positions of every example are taken in balanced blocks of at most
`budget` bytes of distances (at least MIN_ROWS of each example); each row's distances and
argmin are the one-shot computation's.
Budgets as models/attention.py's: None stages the CPU's and the accelerators' plans with
`jax.lax.platform_dependent`, and the compiling platform picks its own.
"""
import functools
from typing import Optional

import jax
import jax.numpy as jnp

from resshift_jax.models.attention import ACCELERATOR_BUDGET, CPU_BUDGET, MIN_ROWS


def block_rows(batch: int, positions: int, entries: int, budget: int) -> int:
    """Positions of every example per block: the fewest balanced blocks whose float32
    distances (batch x rows x entries) fit `budget`, but at least MIN_ROWS. The batch
    stays whole in every block, so a batch sharded over devices stays sharded
    (models/attention.py says why)."""
    rows = max(MIN_ROWS, budget // (4 * entries * batch))
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


def _nearest(z, codebook):
    """(B, N) indices of (B, N, D) positions, one matrix product over all of them."""
    return _argmin_distance(z.reshape(-1, z.shape[-1]), codebook).reshape(z.shape[:-1])


def _blocked(z, codebook, rows: int):
    b, n, d = z.shape
    if rows >= n:
        return _nearest(z, codebook)
    blocks = -(-n // rows)
    padded = jnp.pad(z, ((0, 0), (0, blocks * rows - n), (0, 0))).reshape(b, blocks, rows, d)
    indices = jax.lax.map(lambda block: _nearest(block, codebook), jnp.moveaxis(padded, 1, 0))
    return jnp.moveaxis(indices, 0, 1).reshape(b, -1)[:, :n]


def nearest_codes(z, codebook, budget: Optional[int] = None):
    """(B, N) int indices of the nearest rows of `codebook` (K, D) to `z` (B, N, D),
    float32, in blocks of at most `budget` bytes of distances (None: the compiling
    platform's)."""
    z, codebook = jax.lax.stop_gradient((z, codebook))  # an index has no gradient
    b, n, k = z.shape[0], z.shape[1], codebook.shape[0]
    if budget is not None:
        return _blocked(z, codebook, block_rows(b, n, k, budget))
    on_cpu, elsewhere = block_rows(b, n, k, CPU_BUDGET), block_rows(b, n, k, ACCELERATOR_BUDGET)
    if on_cpu == elsewhere:
        return _blocked(z, codebook, on_cpu)
    return jax.lax.platform_dependent(
        z, codebook, cpu=functools.partial(_blocked, rows=on_cpu),
        default=functools.partial(_blocked, rows=elsewhere))
