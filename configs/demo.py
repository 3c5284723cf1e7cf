"""A small ResShift trained from scratch in 3-8 minutes on a 2-core CPU: the README's main job.

Pixel space (no autoencoder; the UNet sees the bicubic-upsampled LQ), x4, 4 steps, on
scikit-image's bundled photographs (so it runs offline) with the real Real-ESRGAN pipeline,
its blur, noise and JPEG ranges narrowed for 64-pixel crops taken at the photographs' own
scale; validation on other bundled photographs degraded by the same pipeline at a fixed
seed, reporting PSNR/SSIM on the Y channel and LPIPS next to bicubic upsampling of the same
LQ. It starts from Flax's default initialisation (`train.init = "flax"`): at this budget the
reference's (torch's draws, zeroed ResBlock outputs; the default of every other recipe) ends
2 dB below bicubic (docs/benchmarks.md).
"""
from configs.common import base_config

TRAIN_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "colorwheel", "retina")
VAL_PHOTOS = ("chelsea", "coffee")


def get_config():
    c = base_config()
    c.model = dict(
        image_size=64, in_channels=3, model_channels=32, out_channels=3,
        attention_resolutions=(16,), dropout=0, channel_mult=(1, 2, 2), num_res_blocks=1,
        conv_resample=True, dims=2, use_fp16=False, num_head_channels=32,
        use_scale_shift_norm=True, resblock_updown=False, swin_depth=2, swin_embed_dim=64,
        window_size=8, mlp_ratio=2, cond_lq=True, lq_size=64)
    c.autoencoder = None
    c.diffusion.update(dict(latent_flag=False, kappa=0.5, min_noise_level=0.1,
                            predict_type="residual"))  # starts at the bicubic image
    c.data.train.update(dict(
        sources=({"type": "skimage", "names": TRAIN_PHOTOS},), gt_size=64, crop_pad_size=64,
        rescale_gt=False, num_workers=2, prefetch=4))
    c.data.train.params.update(dict(
        blur_kernel_size=11, blur_kernel_size2=7, blur_sigma=(0.2, 1.5), blur_sigma2=(0.2, 1.0),
        noise_range=(1, 10), noise_range2=(1, 8), poisson_scale_range=(0.05, 1.0),
        poisson_scale_range2=(0.05, 0.8), jpeg_range=(60, 95), jpeg_range2=(60, 95)))
    c.data.val = dict(type="degraded", names=VAL_PHOTOS, gt_size=128, grid=2, seed=0)
    c.train.update(dict(
        lr=3e-3, lr_min=3e-4, warmup_iterations=25, iterations=250, batch=8, microbatch=8,
        ema_rate=0.98, loss_coef=dict(mse=1.0, lpips=0.0), save_freq=125, log_freq=25,
        val_freq=125, keep_checkpoints=2, seed=0, compute_dtype="float32", init="flax"))
    c.sample.update(dict(padding_offset=16, unet_weights=None, chop_size=64,
                         chop_stride=48))
    return c
