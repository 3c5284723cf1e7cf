"""The reference's optimisation: AdamW, linear warm-up, then cosine annealing to lr_min."""
import jax
import jax.numpy as jnp
import optax


def learning_rate(train_config):
    """lr(step): step/warmup * lr during warm-up, then cosine to lr_min at `iterations`
    (constant after warm-up when `lr_schedule` is not 'cosin', as the reference)."""
    lr, warmup = float(train_config.lr), int(train_config.warmup_iterations)
    warm = optax.linear_schedule(0.0, lr, max(warmup, 1))
    if train_config.get("lr_schedule") == "cosin":
        decay_steps = max(int(train_config.iterations) - warmup, 1)
        after = optax.cosine_decay_schedule(lr, decay_steps, alpha=float(train_config.lr_min) / lr)
    else:
        after = optax.constant_schedule(lr)
    return optax.join_schedules([warm, after], [warmup])


def scale_by_step_schedule(schedule) -> optax.GradientTransformationExtraArgs:
    """Multiply by -schedule(step), `step` the train state's (an extra argument of `update`).

    optax's own `scale_by_schedule` counts applied updates, so each skipped (non-finite) step
    would set the schedule back by one; the reference's scheduler advances every iteration.
    The state is the same `ScaleByScheduleState`, so checkpoints keep their layout; its count
    is the step after the last applied update."""
    def init_fn(params):
        del params
        return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, *, step, **extra_args):
        del state, params, extra_args
        step_size = -schedule(step)
        updates = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
        return updates, optax.ScaleByScheduleState(count=jnp.asarray(step + 1, jnp.int32))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def make_optimizer(train_config) -> optax.GradientTransformationExtraArgs:
    """AdamW (torch defaults: betas 0.9/0.999, eps 1e-8) with optional global-norm clipping;
    `update(..., step=state.step)` applies learning_rate(state.step), skipped steps included.
    Laid out as `optax.adamw(schedule)`, whose checkpoints it restores."""
    parts = []
    if train_config.get("grad_clip"):
        parts.append(optax.clip_by_global_norm(float(train_config.grad_clip)))
    parts.append(optax.chain(
        optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
        optax.add_decayed_weights(float(train_config.get("weight_decay", 0.0))),
        scale_by_step_schedule(learning_rate(train_config))))
    return optax.chain(*parts)
