"""The parity fixtures' tiny architecture (unet_sr_tiny + vq_f4_tiny, 4 steps) for tests.

Its weights are the fixture checkpoints in tests/fixtures/parity; nothing here is trained.
"""
import pathlib

from configs.common import base_config

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "parity"


def get_config():
    c = base_config()
    c.model = dict(
        in_channels=3, out_channels=3, dropout=0, channel_mult=(1, 1, 2, 2),
        num_res_blocks=(2, 2, 2, 2), conv_resample=True, dims=2, use_fp16=False,
        num_head_channels=32, use_scale_shift_norm=True, resblock_updown=False, swin_depth=2,
        window_size=8, mlp_ratio=4, cond_lq=True, image_size=32, model_channels=32,
        attention_resolutions=(32, 16, 8), swin_embed_dim=64, lq_size=32)
    c.autoencoder.params = dict(embed_dim=3, n_embed=64, ddconfig=dict(
        double_z=False, in_channels=3, out_ch=3, num_res_blocks=2, attn_resolutions=(),
        dropout=0.0, padding_mode="zeros", z_channels=3, resolution=128, ch=32, ch_mult=(1, 1, 2)))
    c.autoencoder.ckpt = str(FIXTURES / "vq_f4_tiny.pth")
    c.diffusion.min_noise_level = 0.2
    c.data.train.update(dict(gt_size=128, crop_pad_size=128, num_workers=2,
                             sources=({"type": "skimage", "names": ("astronaut", "coffee")},)))
    c.data.val = None
    c.train.update(dict(batch=8, microbatch=8, iterations=4, warmup_iterations=2,
                        loss_coef=dict(mse=1.0, lpips=0.0), save_freq=2, log_freq=1,
                        val_freq=1000, compute_dtype="float32", seed=0))
    c.sample.update(dict(chop_size=32, chop_stride=24, padding_offset=32,
                         unet_weights=str(FIXTURES / "unet_sr_tiny.pth")))
    return c
