"""SinSR (Wang et al., CVPR 2024): distil a ResShift teacher into a one-step student.

    python train.py --config configs/sinsr_v1.py --workdir runs/sinsr \
        --config.data.train.sources='({"type": "folder", "root": "/data/imagenet/train"},)' \
        --config.autoencoder.ckpt=weights/autoencoder_vq_f4.pth
    # any teacher: its config after the colon, its weights (released name, .pth/.safetensors
    # or training workdir) in distill.teacher_ckpt
    python train.py --config configs/sinsr_v1.py:realsr_v3 --config.distill.teacher_ckpt=runs/v3 ...

Reference: SinSR's configs/SinSR.yaml: teacher resshift_realsrx4_s15_v1.pth (15 steps), the
student starts as the teacher and is always called at t = T-1; learn_xT, finetune_use_gt 1.0;
AdamW lr 5e-5 after 5000 linear warm-up iterations, batch 64, EMA 0.999, float32. Its yaml runs
500000 iterations; its README finds a few thousand enough (`--config.train.iterations=N`). The
released student SinSR_v1.pth is `sample.unet_weights` (`sample.py --task realsr --version
sinsr`). `:tiny_test` is the tests' variant: the fixture weights as teacher, tiny_test's
short schedule.
"""
import importlib

import ml_collections

RECIPE = dict(lr=5e-5, lr_schedule=None, warmup_iterations=5000, iterations=500000, batch=64,
              microbatch=8, ema_rate=0.999, weight_decay=0.0, save_freq=2000, val_freq=2000,
              log_freq=200, seed=123456, compute_dtype="float32")


def get_config(teacher: str = "realsr_v1"):
    c = importlib.import_module(f"configs.{teacher}").get_config()
    c.distill = ml_collections.ConfigDict(dict(
        teacher_ckpt=c.sample.unet_weights, learn_xT=True, finetune_use_gt=1.0))
    c.model_ckpt = None  # student init; default: the teacher (SinSR's model.ckpt_path)
    c.train.loss_coef = dict(mse=1.0, lpips=0.0)  # SinSR's losses only (latent MSE)
    if teacher != "tiny_test":
        c.train.update(RECIPE)
    c.sample.sampler = "onestep"
    c.sample.unet_weights = "sinsr_v1" if teacher == "realsr_v1" else None
    return c
