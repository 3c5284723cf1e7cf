"""The whole training state as one pytree: what a checkpoint holds besides the data position."""
import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
    step: jax.Array            # completed updates
    params: dict
    opt_state: object
    ema_params: dict
    rng: jax.Array             # raw uint32 key data (checkpointable)
    nonfinite_total: jax.Array  # skipped updates so far
    nonfinite_run: jax.Array    # consecutive skipped updates


def create_state(params, optimizer, seed: int) -> TrainState:
    """Fresh state: EMA starts as a copy of the params, as the reference's."""
    params = jax.tree.map(jnp.array, params)  # own copies: the step donates its state
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params),
                      ema_params=jax.tree.map(jnp.array, params),
                      rng=jax.random.key_data(jax.random.key(seed)),
                      nonfinite_total=jnp.zeros((), jnp.int32),
                      nonfinite_run=jnp.zeros((), jnp.int32))
