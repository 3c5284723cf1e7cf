"""Real-world x4 SR, NeurIPS recipe (v1; `configs/realsr_v1.py:v2` for the v2 weights): 15 steps, MSE.

Reference: configs/realsr_swinunet_realesrgan256.yaml; weights resshift_realsrx4_s15_v1.pth / _v2.pth.
"""
from configs.common import base_config


def get_config(version: str = "v1"):
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be v1 or v2, got {version!r}")
    c = base_config()
    c.diffusion.min_noise_level = 0.04
    c.diffusion.steps = 15
    c.data.train.gt_size = 256
    c.train.update(dict(batch=64, microbatch=8, iterations=300000, lr_schedule=None,
                        loss_coef=dict(mse=1.0, lpips=0.0)))
    c.data.train.num_workers = 4
    c.sample.unet_weights = version
    return c
