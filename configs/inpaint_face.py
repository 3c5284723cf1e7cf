"""Face inpainting (CelebA-HQ 256): 4 steps, MSE + 10 LPIPS, face VQ autoencoder.

Reference: configs/inpaint_lama256_face.yaml; weights resshift_inpainting_face_s4.pth.
"""
from configs import inpaint_imagenet


def get_config():
    c = inpaint_imagenet.get_config()
    # transform_type 'default': the 256x256 faces are used as they are, no flip or crop.
    c.data.train.update(dict(num_workers=6, use_hflip=False, transform_type="crop",
                             crop_pad_size=256))
    c.data.val.update(dict(lq_dir="testdata/inpainting/face/lq", gt_dir="testdata/inpainting/face/hq",
                           mask_dir="testdata/inpainting/face/mask"))
    c.autoencoder.ckpt = "vqgan_face256"
    c.sample.unet_weights = "inpaint_face"
    return c
