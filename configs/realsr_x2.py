"""Real-world x2 SR (no released weights): 4 steps, MSE + LPIPS, LQ 128 -> latent 64.

Reference: configs/realsr_realesrgan256_x2.yaml.
"""
from configs.common import base_config


def get_config():
    c = base_config()
    c.sf = 2
    c.model.lq_size = 128
    c.data.val = None
    c.sample.padding_offset = 128
    c.sample.unet_weights = None
    return c
