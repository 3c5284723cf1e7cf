"""SinSR distillation (Wang et al., CVPR 2024): a one-step student from any ResShift teacher.

Each step follows SinSR's `training_losses_distill`: x_T = z_y + kappa sqrt(eta_T) noise; the
frozen teacher runs its deterministic chain from x_T (`lax.scan`, no gradients) to z0_teacher;
the student, a copy of the teacher always called at t = T-1, learns
- `mse`: student(x_T) -> z0_teacher (as ResShift's MSE, with z0_teacher for x_0);
- `mse_xT` (`learn_xT`): student(z0_teacher, told t = 0) -> x_T, the inverse map;
- `mse_gt` (weight `finetune_use_gt`): the ground truth's latent through the inverse map
  (frozen: no gradient) and back, student(student(z_gt, told 0)) -> z_gt.
Every input is scaled as at T-1 (SinSR's `_scale_input(., t)`). The teacher's params ride in
the step's `frozen` tree next to the autoencoder's, so sharding, microbatches, checkpoints and
resume are the train loop's own.
"""
import dataclasses

import jax
import jax.numpy as jnp

from resshift_jax import diffusion
from resshift_jax.sampling import Restorer, reverse_chain
from resshift_jax.train.experiment import SetupError, init_unet_params
from resshift_jax.train.objective import latent_pair
from resshift_jax.weights import CheckpointError, WeightsError, load_weights


def teacher_x0(teacher: Restorer, teacher_params, z_y, lq, mask, noise):
    """The teacher's deterministic chain from x_T = prior_sample(z_y, noise): its final x_0."""
    samples, _ = reverse_chain(teacher, jax.lax.stop_gradient(teacher_params), z_y, lq, mask,
                               noise)
    return jax.lax.stop_gradient(samples[-1])


def distill_terms(restorer: Restorer, student_params, teacher_params, z_start, z_y, lq, noise,
                  mask=None, *, learn_xT: bool = True, finetune_use_gt: float = 1.0) -> dict:
    """Per-example loss terms (and the latents they came from) for given noise."""
    s = restorer.schedule
    batch = z_y.shape[0]
    last = jnp.full((batch,), s.num_timesteps - 1, jnp.int32)
    zero = jnp.zeros((batch,), jnp.int32)

    def student(x, net_t):
        return restorer.denoise(student_params, x, last, lq, mask, net_t).astype(jnp.float32)

    def mse(a, b):
        return jnp.mean((a - b) ** 2, axis=tuple(range(1, a.ndim)))

    teacher = dataclasses.replace(restorer, sampler="ddim")
    z_t = diffusion.prior_sample(s, z_y, noise)
    z0_teacher = teacher_x0(teacher, teacher_params, z_y, lq, mask, noise)
    out = student(z_t, last)
    terms = {"mse": diffusion.mse_loss(s, out, z0_teacher, z_y, last, noise), "z_t": z_t,
             "z0_teacher": z0_teacher, "pred_zstart": diffusion.predict_xstart(s, out, z_t, z_y, last)}
    loss = terms["mse"]
    if learn_xT:
        terms["mse_xT"] = mse(z_t, student(z0_teacher, zero))
        loss = loss + terms["mse_xT"]
    if finetune_use_gt:
        x_T_gt = jax.lax.stop_gradient(student(z_start, zero))
        terms["mse_gt"] = mse(z_start, student(x_T_gt, last))
        loss = loss + finetune_use_gt * terms["mse_gt"]
    terms["loss"] = loss
    return terms


def make_distill_loss(restorer: Restorer, *, learn_xT: bool = True, finetune_use_gt: float = 1.0):
    """loss_fn(student_params, batch, keys, frozen) -> (loss, metrics) for the train step.

    `frozen` holds `teacher` (UNet params) and `vq` (absent in pixel space); each example's
    prior noise is drawn from its own key in `keys`.
    """
    def loss_fn(student_params, batch, keys, frozen):
        hq, lq, mask = batch["hq"], batch["lq"], batch.get("mask")
        z_start, z_y = latent_pair(restorer, frozen.get("vq"), hq, lq)
        noise = jax.vmap(lambda k: jax.random.normal(k, z_y.shape[1:], jnp.float32))(keys)
        terms = distill_terms(restorer, student_params, frozen["teacher"], z_start, z_y, lq, noise,
                              mask, learn_xT=learn_xT, finetune_use_gt=finetune_use_gt)
        metrics = {k: jnp.mean(terms[k]) for k in ("mse", "mse_xT", "mse_gt") if k in terms}
        loss = jnp.mean(terms["loss"])
        return loss, dict(metrics, loss=loss)

    return loss_fn


LOSS_COEF = {"mse": 1.0, "lpips": 0.0}  # SinSR's loss has no coefficients and no LPIPS term


def check_loss_coef(train_config) -> None:
    """Refuse (SetupError) a `train.loss_coef` other than LOSS_COEF: SinSR weighs its terms
    by `distill.learn_xT` and `distill.finetune_use_gt` only, so any other coefficient would be
    ignored (and lpips > 0 would load LPIPS weights that nothing uses)."""
    coef = {**LOSS_COEF, **dict(train_config.get("loss_coef") or {})}
    if coef != LOSS_COEF:
        raise SetupError(f"train.loss_coef={coef}: distillation has SinSR's loss only "
                         f"(mse=1.0, lpips=0.0); distill.learn_xT and distill.finetune_use_gt "
                         f"choose its terms")


def load_teacher(config, restorer: Restorer, weights_dir: str = "weights"):
    """Teacher UNet params from `config.distill.teacher_ckpt`: any weight spec (a released
    name such as 'v1', a .pth / .safetensors file, or a training workdir: its EMA params)."""
    spec = config.distill.get("teacher_ckpt")
    if not spec:
        raise SetupError("distill.teacher_ckpt is not set: give a released name, a .pth or "
                         ".safetensors file, or a training workdir")
    try:
        return load_weights("unet", restorer.unet, config.model, spec, weights_dir)
    except (CheckpointError, WeightsError, OSError) as e:
        raise SetupError(f"distill.teacher_ckpt: {e}") from None


def setup(config, restorer: Restorer, frozen: dict, weights_dir: str = "weights"):
    """(student init params, frozen with the teacher, loss_fn) of a distillation config.

    The student starts as the teacher (SinSR), or from `config.model_ckpt` when given.
    """
    check_loss_coef(config.train)
    teacher = load_teacher(config, restorer, weights_dir)
    init = teacher
    if config.get("model_ckpt"):
        init = init_unet_params(config, restorer, jax.random.key(0), weights_dir)
    d = config.distill
    loss_fn = make_distill_loss(restorer, learn_xT=bool(d.get("learn_xT", True)),
                                finetune_use_gt=float(d.get("finetune_use_gt", 1.0)))
    return init, dict(frozen, teacher=teacher), loss_fn
