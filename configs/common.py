"""Shared pieces of the experiment configs: the reference's v3 recipe and its variations.

Values are those of the reference's yaml files (configs/*.yaml in zsyOAOA/ResShift); the
field layout is ours (see docs/configs.md).
"""
import ml_collections

V3_UNET = dict(
    image_size=64, in_channels=3, model_channels=160, out_channels=3,
    attention_resolutions=(64, 32, 16, 8), dropout=0, channel_mult=(1, 2, 2, 4),
    num_res_blocks=(2, 2, 2, 2), conv_resample=True, dims=2, use_fp16=False,
    num_head_channels=32, use_scale_shift_norm=True, resblock_updown=False, swin_depth=2,
    swin_embed_dim=192, window_size=8, mlp_ratio=4, cond_lq=True, lq_size=64)

VQ_F4 = dict(embed_dim=3, n_embed=8192, ddconfig=dict(
    double_z=False, z_channels=3, resolution=256, in_channels=3, out_ch=3, ch=128,
    ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=(), dropout=0.0,
    padding_mode="zeros"))

VQ_F8_FACE = dict(embed_dim=8, n_embed=4096, ddconfig=dict(
    double_z=False, z_channels=8, resolution=512, in_channels=3, out_ch=3, ch=64,
    ch_mult=(1, 2, 4, 8), num_res_blocks=(1, 2, 3, 4), attn_resolutions=(), dropout=0.0,
    padding_mode="zeros"))

V3_DIFFUSION = dict(
    schedule_name="exponential", schedule_kwargs=dict(power=0.3), etas_end=0.99, steps=4,
    min_noise_level=0.2, kappa=2.0, weighted_mse=False, predict_type="xstart",
    timestep_respacing=None, scale_factor=1.0, normalize_input=True, latent_flag=True)

REALESRGAN = dict(
    # first stage (dataset side)
    blur_kernel_size=21,
    kernel_list=("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                 "plateau_aniso"),
    kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03), sinc_prob=0.1, blur_sigma=(0.2, 3.0),
    betag_range=(0.5, 4.0), betap_range=(1, 2.0),
    blur_kernel_size2=15,
    kernel_list2=("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                  "plateau_aniso"),
    kernel_prob2=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03), sinc_prob2=0.1, blur_sigma2=(0.2, 1.5),
    betag_range2=(0.5, 4.0), betap_range2=(1, 2.0), final_sinc_prob=0.8,
    # second-order pipeline (the reference's `degradation` section)
    resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5), gaussian_noise_prob=0.5,
    noise_range=(1, 30), poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4,
    jpeg_range=(30, 95), second_order_prob=0.5, second_blur_prob=0.8,
    resize_prob2=(0.3, 0.4, 0.3), resize_range2=(0.3, 1.2), gaussian_noise_prob2=0.5,
    noise_range2=(1, 25), poisson_scale_range2=(0.05, 2.5), gray_noise_prob2=0.4,
    jpeg_range2=(30, 95), resize_back=False, use_sharp=False)


def base_config() -> ml_collections.ConfigDict:
    """The v3 (journal) real-world x4 recipe; other configs change what differs."""
    c = ml_collections.ConfigDict()
    c.sf = 4  # the scale factor, for the schedule, the data and sampling alike
    c.model = dict(V3_UNET)
    c.model_ckpt = None
    c.autoencoder = ml_collections.ConfigDict(dict(params=VQ_F4, ckpt="vqgan"))
    c.diffusion = dict(V3_DIFFUSION)
    c.data = ml_collections.ConfigDict()
    c.data.train = ml_collections.ConfigDict(dict(
        type="realesrgan", sources=({"type": "folder", "root": "data/train"},),
        gt_size=256, crop_pad_size=300, use_hflip=True, use_rot=False, rescale_gt=True,
        transform_type="crop", params=dict(REALESRGAN), num_workers=6, prefetch=2))
    c.data.device_prefetch = 2  # global batches built ahead of the step, in a thread
    c.data.val = ml_collections.ConfigDict(dict(
        type="folder", lq_dir="testdata/Val_SR/lq", gt_dir="testdata/Val_SR/gt", mask_dir=None,
        max_images=64))
    c.train = ml_collections.ConfigDict(dict(
        lr=5e-5, lr_min=2e-5, lr_schedule="cosin", warmup_iterations=5000, iterations=400000,
        batch=96, microbatch=12, ema_rate=0.999, weight_decay=0.0, grad_clip=None,
        loss_coef=dict(mse=1.0, lpips=1.0), lpips_vgg=None, lpips_lin=None, val_lpips="", save_freq=10000,
        log_freq=200, val_freq=10000, keep_checkpoints=3, seed=123456,
        compute_dtype="bfloat16", max_nonfinite_steps=100, use_ema_val=True, fsdp=False, fsdp_min_size=2 ** 14,
        init="reference"))
    c.sample = ml_collections.ConfigDict(dict(
        seed=12345, chop_size=512, chop_stride=-1, padding_offset=64, mask_back=False,
        compute_dtype="float32", blend="gaussian", unet_weights="v3"))
    return c
