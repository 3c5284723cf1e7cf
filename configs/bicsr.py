"""Bicubic x4 SR (ImageNet): 4 steps, MSE + LPIPS, MATLAB bicubic degradation.

Reference: configs/bicx4_swinunet_lpips.yaml; weights resshift_bicsrx4_s4.pth.
"""
from configs.common import base_config


def get_config():
    c = base_config()
    c.task = "bicsr"
    c.data.train.type = "bicubic"
    c.data.train.params = dict(scale=0.25, activate_matlab=True, resize_back=False)
    c.data.train.use_hflip = False
    c.data.train.crop_pad_size = 256
    c.train.log_freq = 1000
    c.sample.unet_weights = "bicsr"
    return c
