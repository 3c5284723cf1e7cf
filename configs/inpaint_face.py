"""Face inpainting (CelebA-HQ 256): 4 steps, MSE + 10 LPIPS, face VQ autoencoder.

Reference: configs/inpaint_lama256_face.yaml; weights resshift_inpainting_face_s4.pth.
"""
from configs import inpaint_imagenet


def get_config():
    c = inpaint_imagenet.get_config()
    c.data.train.num_workers = 6
    c.data.val.update(dict(lq_dir="testdata/inpainting/face/lq", gt_dir="testdata/inpainting/face/hq",
                           mask_dir="testdata/inpainting/face/mask"))
    c.sample.update(dict(unet_weights="inpaint_face", vq_weights="vqgan_face256"))
    return c
