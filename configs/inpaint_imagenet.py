"""Inpainting (ImageNet 256): 4 steps, MSE + 10 LPIPS, LaMa-style masks as an extra channel.

Reference: configs/inpaint_lama256_imagenet.yaml; weights resshift_inpainting_imagenet_s4.pth.
"""
from configs.common import base_config

MASKS = dict(
    irregular_proba=1, irregular_kwargs=dict(max_angle=4, max_len=200, max_width=100,
                                             max_times=5, min_times=1),
    box_proba=1, box_kwargs=dict(margin=10, bbox_min_size=30, bbox_max_size=150, max_times=4,
                                 min_times=1),
    outpainting_proba=1, outpainting_kwargs=dict(
        min_padding_percent=0.04, max_padding_percent=0.25, left_padding_prob=0.5,
        top_padding_prob=0.5, right_padding_prob=0.5, bottom_padding_prob=0.5))


def get_config():
    c = base_config()
    c.sf = 1
    c.model.cond_mask = True
    c.model.lq_size = 256
    c.data.train.update(dict(type="inpainting", params=dict(mask_kwargs=MASKS),
                             gt_size=256, transform_type="lama_distortions"))
    c.data.val.update(dict(lq_dir="testdata/inpainting/imagenet/lq",
                           gt_dir="testdata/inpainting/imagenet/gt",
                           mask_dir="testdata/inpainting/imagenet/mask"))
    c.train.batch = 96
    c.train.loss_coef = dict(mse=1.0, lpips=10.0)
    c.data.train.num_workers = 4
    c.sample.update(dict(padding_offset=256, mask_back=True, unet_weights="inpaint_imagenet"))
    return c
