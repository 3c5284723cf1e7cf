"""The reference's optimisation: AdamW, linear warm-up, then cosine annealing to lr_min."""
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


def make_optimizer(train_config) -> optax.GradientTransformation:
    """AdamW (torch defaults: betas 0.9/0.999, eps 1e-8) with optional global-norm clipping."""
    parts = []
    if train_config.get("grad_clip"):
        parts.append(optax.clip_by_global_norm(float(train_config.grad_clip)))
    parts.append(optax.adamw(learning_rate(train_config), b1=0.9, b2=0.999, eps=1e-8,
                             weight_decay=float(train_config.get("weight_decay", 0.0))))
    return optax.chain(*parts)
