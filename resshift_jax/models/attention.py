"""Full single-head attention over all positions, in blocks that fit a memory budget.

The VQ autoencoder's mid-level attention spans every latent position: N = 4096 tokens for
a 256x256 image, 262,144 for a 2048x2048 tile, whose one-shot float32 score matrix alone
would take 275 GB. A query row's softmax needs only its own row of scores, so the rows
are computed in blocks of at most `budget` bytes of float32 scores, the same query rows of
every example at once; every block's softmax is exact, so the result is the one-shot
computation's. A row of scores is N floats, 1/C of the keys themselves (C = 512 here), so
memory stays linear in N without chunking the keys; a block has at least MIN_ROWS rows of
each example, since a thinner product re-reads all keys for too little work. When there is more than
one block, the backward recomputes each block's scores (`jax.checkpoint`) instead of
storing N x N probabilities.

The budget is a property of the memory hierarchy, not of the result. On XLA:CPU, 8 MiB
blocks (512 rows of 4096) ran the 4096-token attention 3x faster than one fused product;
GPUs and TPUs want large products, and 1 GiB blocks keep them large while bounding
memory. With no explicit budget, `jax.lax.platform_dependent` stages both plans into the
program, and the platform it is compiled for picks its own (an exported multi-platform
program carries both).
"""
import functools
from typing import Optional

import jax
import jax.numpy as jnp

CPU_BUDGET = 8 << 20
ACCELERATOR_BUDGET = 1 << 30
MIN_ROWS = 128


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan(batch: int, tokens: int, budget: int) -> int:
    """Query rows per block, taken in every example at once: the most whose float32 scores
    (batch x rows x tokens) fit `budget` bytes, but at least MIN_ROWS, balanced (4000 rows
    with room for 900 run as 5 blocks of 800); `tokens` means one shot.

    The batch stays whole in every block, so a batch sharded over devices stays sharded (a
    block of whole examples would cut across the devices' shares, and XLA would gather the
    batch onto every device: 6 GiB of attention weights and 8x the work per device in the
    v3 training step on 8 GPUs).
    """
    rows = max(MIN_ROWS, budget // (4 * tokens * batch))
    if rows >= tokens:
        return tokens
    return _ceil_div(tokens, _ceil_div(tokens, rows))


def _attend(q, k, v, dtype):
    """softmax(q k^T / sqrt(c)) v for (B, N, C) inputs; scores and softmax in float32."""
    scores = jnp.einsum("bic,bjc->bij", q, k, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(scores * (int(q.shape[-1]) ** -0.5), axis=-1)
    return jnp.einsum("bij,bjc->bic", weights.astype(dtype), v)


def blocked_attention(q, k, v, dtype, rows: int):
    """Attention computed `rows` query rows of every example at a time (the last block
    zero-padded, its padded rows dropped)."""
    b, n, c = q.shape
    if rows >= n:
        return _attend(q, k, v, dtype)
    attend = jax.checkpoint(functools.partial(_attend, dtype=dtype))
    count = _ceil_div(n, rows)
    blocks = jnp.pad(q, ((0, 0), (0, count * rows - n), (0, 0))).reshape(b, count, rows, c)
    out = jax.lax.map(lambda block: attend(block, k, v), jnp.moveaxis(blocks, 1, 0))
    return jnp.moveaxis(out, 0, 1).reshape(b, count * rows, -1)[:, :n]


def attention(q, k, v, dtype, budget: Optional[int] = None):
    """Exact full attention of (B, N, C) inputs, blocked to `budget` bytes of scores.

    `budget=None` uses the compiling platform's: CPU_BUDGET on CPU, ACCELERATOR_BUDGET on
    GPUs and TPUs.
    """
    b, n, _ = q.shape
    if budget is not None:
        return blocked_attention(q, k, v, dtype, plan(b, n, budget))
    on_cpu, elsewhere = plan(b, n, CPU_BUDGET), plan(b, n, ACCELERATOR_BUDGET)
    if on_cpu == elsewhere:
        return blocked_attention(q, k, v, dtype, on_cpu)
    return jax.lax.platform_dependent(
        q, k, v, cpu=functools.partial(blocked_attention, dtype=dtype, rows=on_cpu),
        default=functools.partial(blocked_attention, dtype=dtype, rows=elsewhere))
