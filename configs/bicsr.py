"""Bicubic x4 SR (ImageNet): 4 steps, MSE + LPIPS, MATLAB bicubic degradation.

Reference: configs/bicx4_swinunet_lpips.yaml; weights resshift_bicsrx4_s4.pth.
"""
from configs.common import base_config


def get_config():
    c = base_config()
    c.data.train.type = "bicubic"
    # degrade_kwargs: shortest side resized to 256 then a random 256 crop (our rescale_gt),
    # then one of the 8 flips/rotations (pass_aug False: our use_hflip + use_rot).
    c.data.train.params = dict(scale=0.25, activate_matlab=True, resize_back=False)
    c.data.train.update(dict(use_hflip=True, use_rot=True, rescale_gt=True, crop_pad_size=256))
    # The reference validates on 64 ImageNet GT images degraded on the fly; its own bicubic
    # test set (testdata/Bicubicx4: MATLAB-bicubic LQ and GT) is the folder equivalent.
    c.data.val.update(dict(lq_dir="testdata/Bicubicx4/lq_matlab", gt_dir="testdata/Bicubicx4/gt",
                           max_images=64))
    c.train.log_freq = 1000
    c.sample.unet_weights = "bicsr"
    return c
