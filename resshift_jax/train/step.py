"""One optimisation step as a pure function: microbatched gradients, AdamW, EMA, NaN guard."""
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from resshift_jax.train.state import TrainState


def _split_micro(batch: dict, microbatches: int) -> dict:
    """(B, ...) -> (m, B/m, ...), microbatch k taking rows k, k+m, ... (spread over devices)."""
    def split(x):
        x = x.reshape((x.shape[0] // microbatches, microbatches) + x.shape[1:])
        return jnp.swapaxes(x, 0, 1)
    return jax.tree.map(split, batch)


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, *,
                    microbatches: int = 1, ema_rate: float = 0.999):
    """train_step(state, batch, frozen) -> (state, metrics).

    `loss_fn(params, batch, keys, frozen) -> (loss, aux)`, `keys` one per example of the
    microbatch. Gradients are averaged over `microbatches` equal slices of
    the batch (lax.scan); a step whose loss or gradients are not finite leaves params,
    optimizer and EMA untouched and is counted (the counters are also in the metrics, which
    the loop reads without touching the donated state). Each example's key is fixed by the
    step and its row in the global batch, so its timestep and noise depend on neither the
    devices or hosts it lands on nor the microbatch it is in: any split of the batch trains
    the same model, to float rounding.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state: TrainState, batch: dict, frozen):
        rng, step_key = jax.random.split(jax.random.wrap_key_data(state.rng))
        rows = jax.tree.leaves(batch)[0].shape[0]
        keys = _split_micro(jax.random.split(step_key, rows), microbatches)

        def micro(acc, xs):
            mb, key = xs
            (loss, aux), grads = grad_fn(state.params, mb, key, frozen)
            out = (grads, dict(aux, loss=loss))
            return (out if acc is None else jax.tree.map(jnp.add, acc, out)), None

        micro_batches = _split_micro(batch, microbatches)
        if microbatches == 1:  # no loop: XLA optimises a straight-line step best
            (grads, aux), _ = micro(None, (jax.tree.map(lambda x: x[0], micro_batches), keys[0]))
        else:
            zeros = jax.tree.map(jnp.zeros_like, state.params)
            aux_shape = jax.eval_shape(lambda: grad_fn(
                state.params, jax.tree.map(lambda x: x[0], micro_batches), keys[0], frozen)[0][1])
            aux0 = dict(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shape),
                        loss=jnp.zeros((), jnp.float32))
            (grads, aux), _ = jax.lax.scan(micro, (zeros, aux0), (micro_batches, keys))
        grads = jax.tree.map(lambda g: g / microbatches, grads)
        aux = jax.tree.map(lambda a: a / microbatches, aux)

        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(aux["loss"]) & jnp.isfinite(grad_norm)

        def update(_):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            ema = jax.tree.map(lambda e, p: ema_rate * e + (1.0 - ema_rate) * p,
                               state.ema_params, params)
            return params, opt_state, ema

        params, opt_state, ema = jax.lax.cond(
            finite, update, lambda _: (state.params, state.opt_state, state.ema_params), None)
        new_state = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema,
            rng=jax.random.key_data(rng),
            nonfinite_total=state.nonfinite_total + (~finite).astype(jnp.int32),
            nonfinite_run=jnp.where(finite, 0, state.nonfinite_run + 1))
        metrics = dict(aux, grad_norm=grad_norm, nonfinite=(~finite).astype(jnp.float32),
                       nonfinite_run=new_state.nonfinite_run,
                       nonfinite_total=new_state.nonfinite_total)
        return new_state, metrics

    return train_step
