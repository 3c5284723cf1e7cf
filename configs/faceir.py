"""Blind face restoration (FFHQ 512): 4 steps, MSE + 10 LPIPS, VQ f8 (dim 8) autoencoder.

Reference: configs/faceir_gfpgan512_lpips.yaml; weights resshift_faceir_s4.pth.
"""
from configs.common import VQ_F8_FACE, base_config


def get_config():
    c = base_config()
    c.sf = 1
    c.model.update(dict(in_channels=8, out_channels=8, lq_size=512))
    c.autoencoder.params = VQ_F8_FACE
    c.autoencoder.ckpt = "vqgan_face512"
    c.data.train.update(dict(
        type="gfpgan", gt_size=512, crop_pad_size=512, use_hflip=True,
        params=dict(blur_kernel_size=41, kernel_list=("iso", "aniso"), kernel_prob=(0.5, 0.5),
                    blur_sigma=(0.1, 15), downsample_range=(0.8, 32), noise_range=(0, 20),
                    jpeg_range=(30, 100), gray_prob=0.01, gt_gray=True)))
    c.data.val.update(dict(lq_dir="testdata/faceir/cropped_faces/lq", gt_dir=None))
    c.train.update(dict(batch=56, microbatch=7, loss_coef=dict(mse=1.0, lpips=10.0)))
    c.sample.update(dict(padding_offset=512, unet_weights="faceir"))
    return c
