"""A ResShift experiment from its config: networks, frozen weights, loss, data, validation.

`train.py` is a thin shell over `run`; tests call the pieces directly. Everything that can
be wrong with the user's setup (autoencoder or LPIPS weights missing or not fitting, an
empty dataset, a batch that does not split over the devices) is refused here, before the
first step.
"""
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax import diffusion, metrics
from resshift_jax.convert.loading import build_model, load_params
from resshift_jax.convert.pth import CheckpointError
from resshift_jax.resize import bicubic_upsample
from resshift_jax.sampling import Restorer, make_restore_fn
from resshift_jax.train.objective import make_loss_fn


class SetupError(ValueError):
    """The experiment cannot start; the message says what to fix."""


def _model_inputs(model, batch: int = 1):
    from resshift_jax.models.unet import example_inputs
    return example_inputs(model, batch)


def build_restorer(config, dtype) -> Restorer:
    """The UNet, the (optional) VQ autoencoder and the schedule of `config`."""
    unet = build_model("unet", config.model, dtype=dtype)
    vq = None
    if config.get("autoencoder") is not None:
        vq = build_model("vq", config.autoencoder.params, dtype=dtype)
    schedule = diffusion.make_schedule(**config.diffusion.to_dict())
    return Restorer(unet=unet, vq=vq, schedule=schedule, sf=int(config.diffusion.sf))


def init_unet_params(config, restorer: Restorer, key):
    """Fresh float32 UNet params, or those of `config.model_ckpt` when given."""
    params = jax.jit(restorer.unet.init)(key, *_model_inputs(restorer.unet))["params"]
    if config.get("model_ckpt"):
        try:
            return load_params("unet", config.model_ckpt, restorer.unet)
        except (CheckpointError, OSError) as e:
            raise SetupError(f"model_ckpt: {e}") from None
    return params


def load_frozen(config, restorer: Restorer, weights_dir: str = "weights") -> dict:
    """The frozen params: the autoencoder's (required in latent space) and LPIPS's."""
    frozen = {}
    if restorer.vq is not None:
        from resshift_jax.inference import resolve_checkpoint
        spec = config.autoencoder.get("ckpt") or config.get("sample", {}).get("vq_weights")
        if not spec:
            raise SetupError("autoencoder.ckpt is not set: training in latent space needs the "
                             "autoencoder's weights (a .pth or converted .safetensors file)")
        try:
            frozen["vq"] = load_params("vq", resolve_checkpoint(spec, weights_dir), restorer.vq)
        except (CheckpointError, OSError) as e:
            raise SetupError(f"autoencoder: {e}") from None
    if config.train.loss_coef.get("lpips", 0.0) > 0:
        vgg, lin = config.train.get("lpips_vgg"), config.train.get("lpips_lin")
        if not (vgg and lin):
            raise SetupError("loss_coef.lpips > 0 needs --config.train.lpips_vgg (torchvision "
                             "vgg16-397923af.pth) and --config.train.lpips_lin (lpips "
                             "weights/v0.1/vgg.pth)")
        from resshift_jax.convert.lpips import load_lpips
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
    """The step's loss_fn(params, batch, rng, frozen) with the config's coefficients."""
    return make_loss_fn(restorer, mse_coef=float(config.train.loss_coef.get("mse", 1.0)),
                        lpips_coef=float(config.train.loss_coef.get("lpips", 0.0)),
                        lpips_module=lpips_module(config, dtype))


def _to_uint8(x) -> np.ndarray:
    return np.round(np.clip(np.asarray(x, np.float32) * 0.5 + 0.5, 0, 1) * 255).astype(np.uint8)


def make_eval_fn(config, restorer: Restorer, frozen: dict, val_set: list, *,
                 seed: int = 0, max_grid: int = 4):
    """eval_fn(ema_params, step) -> PSNR/SSIM (Y channel) and LPIPS of sampled val images.

    Each validation image is restored by the same compiled chain as `sample.py`, with a
    key fixed per image so successive validations are comparable.
    """
    restore = make_restore_fn(restorer)
    lpips_net = lpips_module(config)

    def eval_fn(ema_params, step):
        del step
        params = {"unet": ema_params, **({"vq": frozen["vq"]} if "vq" in frozen else {})}
        scores = {"psnr_y": [], "ssim_y": [], "lpips": [], "psnr_y_bicubic": []}
        rows = []
        for i, example in enumerate(val_set):
            lq = jnp.asarray(example["lq"][None])
            mask = None if example.get("mask") is None else jnp.asarray(example["mask"][None])
            key = jax.random.fold_in(jax.random.key(seed), i)
            sr = np.asarray(restore(params, lq, mask, key))[0]
            upsampled = np.asarray(bicubic_upsample(lq, restorer.sf))[0]
            row = [_to_uint8(upsampled), _to_uint8(sr)]
            if example.get("gt") is not None:
                gt = example["gt"]
                scores["psnr_y"].append(metrics.psnr(_to_uint8(sr), _to_uint8(gt), crop_border=0,
                                                     y_channel=True))
                scores["ssim_y"].append(metrics.ssim(_to_uint8(sr), _to_uint8(gt), crop_border=0,
                                                     y_channel=True))
                scores["psnr_y_bicubic"].append(metrics.psnr(
                    _to_uint8(upsampled), _to_uint8(gt), crop_border=0, y_channel=True))
                if lpips_net is not None:
                    scores["lpips"].append(float(lpips_net.apply(
                        {"params": frozen["lpips"]}, jnp.asarray(sr[None]),
                        jnp.asarray(gt[None]))[0]))
                row.append(_to_uint8(gt))
            if i < max_grid:
                rows.append(np.concatenate(row, axis=1))
        out = {f"val/{k}": float(np.mean(v)) for k, v in scores.items() if v}
        if rows and all(r.shape == rows[0].shape for r in rows):
            out["images"] = np.concatenate(rows, axis=0)[None]
        return out

    return eval_fn

