"""Real-world x4 SR, journal recipe (v3): 4 steps, MSE + LPIPS.

Reference: configs/realsr_swinunet_realesrgan256_journal.yaml; weights resshift_realsrx4_s4_v3.pth.
"""
from configs.common import base_config


def get_config():
    return base_config()
