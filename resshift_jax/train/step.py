"""One optimisation step as a pure function: microbatched gradients, AdamW, EMA, NaN guard."""
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from resshift_jax.sharding import AXIS
from resshift_jax.train.state import TrainState


def _split_micro(batch: dict, microbatches: int) -> dict:
    """(B, ...) -> (m, B/m, ...), microbatch k taking rows k, k+m, ..."""
    def split(x):
        x = x.reshape((x.shape[0] // microbatches, microbatches) + x.shape[1:])
        return jnp.swapaxes(x, 0, 1)
    return jax.tree.map(split, batch)


def _split_dim(spec: P) -> Optional[int]:
    """The dimension a leaf's spec splits over the data axis (FSDP), or None."""
    return next((d for d, name in enumerate(spec) if name == AXIS), None)


def _gather(param, spec: P):
    dim = _split_dim(spec)
    return param if dim is None else jax.lax.all_gather(param, AXIS, axis=dim, tiled=True)


def _mean_over_devices(grad, spec: P):
    """The mean over the data axis (of float32 gradients), scattered back to `spec`'s split
    (FSDP)."""
    dim = _split_dim(spec)
    if dim is None:
        return jax.lax.pmean(grad, AXIS)
    return jax.lax.psum_scatter(grad, AXIS, scatter_dimension=dim, tiled=True) / (
        jax.lax.axis_size(AXIS))


def _local_mean_grads(grad_fn: Callable, microbatches: int):
    """mean_grads(params, batch, keys, frozen) -> (grads, aux): the mean over the rows of
    `batch`, in `microbatches` equal slices (lax.scan) accumulated in float32."""
    def mean_grads(params, batch, keys, frozen):
        def micro(acc, xs):
            mb, key = xs
            (loss, aux), grads = grad_fn(params, mb, key, frozen)
            out = (grads, dict(aux, loss=loss))
            return (out if acc is None else jax.tree.map(jnp.add, acc, out)), None

        micro_batches = _split_micro(batch, microbatches)
        keys = _split_micro(keys, microbatches)
        if microbatches == 1:  # no loop: XLA optimises a straight-line step best
            (grads, aux), _ = micro(None, (jax.tree.map(lambda x: x[0], micro_batches), keys[0]))
        else:
            zeros = jax.tree.map(jnp.zeros_like, params)
            aux_shape = jax.eval_shape(lambda: grad_fn(
                params, jax.tree.map(lambda x: x[0], micro_batches), keys[0], frozen)[0][1])
            aux0 = dict(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shape),
                        loss=jnp.zeros((), jnp.float32))
            (grads, aux), _ = jax.lax.scan(micro, (zeros, aux0), (micro_batches, keys))
        return jax.tree.map(lambda g: g / microbatches, (grads, aux))
    return mean_grads


def _data_parallel(mean_grads: Callable, mesh: Mesh, param_specs):
    """`mean_grads` run by each device on its own rows (shard_map), combined by one float32
    mean over the data axis. Left to the partitioner, a bf16 step all-reduced the conv kernels'
    gradients in bf16 (XLA put the reduction before the cast to float32), some of them inside
    the microbatch loop, once per microbatch. Params that `param_specs` split (FSDP) are
    gathered for the step and their gradients reduce-scattered back."""
    def per_device(params, batch, keys, frozen):
        grads, aux = mean_grads(jax.tree.map(_gather, params, param_specs), batch, keys, frozen)
        return (jax.tree.map(_mean_over_devices, grads, param_specs),
                jax.lax.pmean(aux, AXIS))
    return jax.shard_map(per_device, mesh=mesh, in_specs=(param_specs, P(AXIS), P(AXIS), P()),
                         out_specs=(param_specs, P()), check_vma=False)


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, *,
                    microbatches: int = 1, ema_rate: float = 0.999, mesh: Optional[Mesh] = None,
                    param_specs=None):
    """train_step(state, batch, frozen) -> (state, metrics).

    `loss_fn(params, batch, keys, frozen) -> (loss, aux)`, `keys` one per example of the
    microbatch. Gradients are averaged over `microbatches` equal slices of the batch (of each
    device's share of it with `mesh`: see `_data_parallel`; `param_specs`, the params'
    PartitionSpecs, default replicated); `optimizer.update` also gets `step=state.step`, so
    `make_optimizer`'s lr follows the step. A step whose loss or gradients are not finite leaves
    params, optimizer and EMA untouched and is counted (the counters are also in the metrics,
    which the loop reads without touching the donated state). Each example's key is fixed by
    the step and its row in the global batch, so its timestep and noise depend on neither the
    devices or hosts it lands on nor the microbatch it is in: any split of the batch trains
    the same model, to float rounding.
    """
    mean_grads = _local_mean_grads(jax.value_and_grad(loss_fn, has_aux=True), microbatches)
    optimizer = optax.with_extra_args_support(optimizer)

    def train_step(state: TrainState, batch: dict, frozen):
        rng, step_key = jax.random.split(jax.random.wrap_key_data(state.rng))
        keys = jax.random.split(step_key, jax.tree.leaves(batch)[0].shape[0])
        if mesh is None:
            grads, aux = mean_grads(state.params, batch, keys, frozen)
        else:
            specs = param_specs or jax.tree.map(lambda _: P(), state.params)
            grads, aux = _data_parallel(mean_grads, mesh, specs)(
                state.params, batch, keys, frozen)

        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(aux["loss"]) & jnp.isfinite(grad_norm)

        def update(_):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params,
                                                  step=state.step)
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
