"""The parity fixtures' tiny inpainting model (unet_inpaint_tiny + vq_f4_tiny, x1) for tests.

Its weights are the fixture checkpoints in tests/fixtures/parity; nothing here is trained.
Masks are an extra UNet input and the known pixels are pasted back, as inpaint_imagenet.
"""
from configs import tiny_test
from configs.tiny_test import FIXTURES


def get_config():
    c = tiny_test.get_config()
    c.sf = 1
    c.model = dict(
        in_channels=3, out_channels=3, dropout=0, channel_mult=(1, 1, 1, 1),
        num_res_blocks=(2, 2, 2, 2), conv_resample=True, dims=2, use_fp16=False,
        num_head_channels=32, use_scale_shift_norm=True, resblock_updown=False, swin_depth=2,
        window_size=8, mlp_ratio=2, cond_lq=True, image_size=32, model_channels=32,
        attention_resolutions=(32, 16, 8), swin_embed_dim=32, lq_size=128, cond_mask=True)
    c.data.train.update(dict(type="inpainting", gt_size=128, crop_pad_size=128,
                             params=dict(mask_kwargs=dict(box_proba=1, box_kwargs=dict(
                                 margin=10, bbox_min_size=20, bbox_max_size=60, max_times=2,
                                 min_times=1)))))
    c.sample.update(dict(padding_offset=128, mask_back=True, chop_size=32, chop_stride=24,
                         unet_weights=str(FIXTURES / "unet_inpaint_tiny.pth")))
    return c
