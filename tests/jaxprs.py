"""Walking a jaxpr with everything nested in it, for the tests that audit programs."""
from jax.extend import core as jax_core

LOOPS = ("scan", "while")


def equations_with_loop_depth(jaxpr, depth: int = 0):
    """(equation, how many scan/while loops it is inside) for every equation of `jaxpr` and of
    the jaxprs nested in it (jit, scan, while, cond, remat, shard_map)."""
    for eqn in jaxpr.eqns:
        yield eqn, depth
        inner = depth + (eqn.primitive.name in LOOPS)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(sub, jax_core.ClosedJaxpr):
                    yield from equations_with_loop_depth(sub.jaxpr, inner)
                elif isinstance(sub, jax_core.Jaxpr):
                    yield from equations_with_loop_depth(sub, inner)


def equations(jaxpr):
    """Every equation of `jaxpr` and of the jaxprs nested in it."""
    return (eqn for eqn, _ in equations_with_loop_depth(jaxpr))
