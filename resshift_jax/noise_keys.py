"""The noise keys of a restoration: one per image, from the seed and the image's name, so an
image's result does not depend on its batch, its slot or its device. jax and numpy only (the
exported programs' loader uses it without the model code)."""
import zlib

import jax
import numpy as np

_WORD = 0xFFFFFFFF


def seed_key(seed: int):
    """`jax.random.key(seed)` as with 64-bit types on, for any seed in -2**63 .. 2**64 - 1.

    They are off here, and `jax.random.key` then keeps the low 32 bits only (2**32 + 5 would
    seed as 5); seeds in 0 .. 2**32 - 1 give the same key either way.
    """
    seed = int(seed)
    if not -2**63 <= seed < 2**64:
        raise ValueError(f"seed {seed} is not a 64-bit integer")
    return jax.random.wrap_key_data(np.array([(seed >> 32) & _WORD, seed & _WORD], np.uint32),
                                    impl="threefry2x32")


def image_key(seed: int, name: str):
    """The PRNG key of the image called `name` (e.g. its file name) under `seed`; a file name
    that is not valid UTF-8 hashes by its bytes (surrogate escapes)."""
    digest = zlib.crc32(name.encode("utf-8", "surrogateescape")) & 0x7FFFFFFF
    return jax.random.fold_in(seed_key(seed), digest)
