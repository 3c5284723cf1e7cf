"""Convert parameters to their compute dtype once, before a loop, instead of on every step.

A bf16 module keeps float32 parameters and converts each kernel to bf16 where it is used.
Inside `lax.scan` that convert runs on every iteration: XLA's GPU compiler leaves the
converts of the released v3 UNet's weights (about 200 kernels, 0.2 GB written) in the loop
body of the 4-step chain. `cast_once` finds, from `fn`'s jaxpr, the leaves `fn` only ever
converts to one other dtype, and converts them up front; every other leaf (a norm's scale
kept in float32, a table read by a gather) is left as it is. `fn` computes the same values
from either tree: converting an already converted value is the identity.
"""
import jax
from jax.extend import core as jax_core

CONVERT = "convert_element_type"
MOVES_ELEMENTS = ("reshape", "squeeze", "broadcast_in_dim", "transpose", "expand_dims")


def cast_once(fn, params, *args):
    """`params` with every leaf that `fn(params, *args)` only converts to one dtype converted
    to it (shapes of `args` suffice: `fn` is traced, not run)."""
    leaves, treedef = jax.tree.flatten(params)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (leaves, args))
    closed = jax.make_jaxpr(
        lambda leaves, args: fn(jax.tree.unflatten(treedef, leaves), *args))(*abstract)
    targets = sole_convert_dtypes(closed.jaxpr, len(leaves))
    return jax.tree.unflatten(treedef, [leaf if dtype is None else leaf.astype(dtype)
                                        for leaf, dtype in zip(leaves, targets)])


def sole_convert_dtypes(jaxpr, count: int) -> list:
    """For each of the first `count` inputs of `jaxpr`: the dtype that every use of it converts
    it to, directly or after ops that only move or copy elements (a reshape, a broadcast),
    which commute with the convert; None where it has another use, no use, or several
    dtypes."""
    consumers = {}
    for eqn in jaxpr.eqns:
        for var in eqn.invars:
            if isinstance(var, jax_core.Var):
                consumers.setdefault(var, []).append(eqn)
    returned = {var for var in jaxpr.outvars if isinstance(var, jax_core.Var)}

    def target(var):
        if var in returned or var not in consumers:
            return None
        found = set()
        for eqn in consumers[var]:
            name = eqn.primitive.name
            if name == CONVERT:
                found.add(eqn.params["new_dtype"])
            elif name in MOVES_ELEMENTS and len(eqn.invars) == 1:
                found.add(target(eqn.outvars[0]))
            else:
                return None
        return found.pop() if len(found) == 1 and None not in found else None

    return [target(var) for var in jaxpr.invars[:count]]
