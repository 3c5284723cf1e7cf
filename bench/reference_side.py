"""Time the PyTorch reference (imported from the user's checkout) for the benchmarks.

Run by bench/*.py under a Python with torch; prints one JSON line of median seconds.
Nothing of the reference is copied here: it is imported from `--reference`.

    python bench/reference_side.py forward --reference ~/ResShift --batch 1
"""
import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import LAYOUTS, median_time  # noqa: E402  (no project dependency: stdlib only)


def networks(reference, unet_ckpt, vq_ckpt, config):
    """Random-weight reference UNet and VQ at a released architecture, and its diffusion."""
    import torch
    from omegaconf import OmegaConf
    sys.path.insert(0, reference)
    from ldm.models.autoencoder import VQModelTorch
    from models.script_util import create_gaussian_diffusion
    from models.unet import UNetModelSwin
    layouts = json.loads(LAYOUTS.read_text())
    torch.manual_seed(0)
    unet = UNetModelSwin(**layouts[unet_ckpt]["params"]).eval()
    vq = VQModelTorch(**layouts[vq_ckpt]["params"]).eval()
    diffusion_params = OmegaConf.to_container(
        OmegaConf.load(f"{reference}/configs/{config}.yaml").diffusion.params)
    return unet, vq, create_gaussian_diffusion(**diffusion_params)


def restore_folder(args, unet, vq, diffusion) -> dict:
    """Wall seconds of the reference sampler's per-image path over a folder: read, reflect-pad
    to a multiple of padding_offset, the chain with VQ encode/decode, crop, clamp, write PNG
    (its ResShiftSampler.sample_func, without CUDA; images within its chop size)."""
    import math
    import time

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in pathlib.Path(args.folder).iterdir() if p.suffix == ".png")
    start = time.perf_counter()
    for path in files:
        y0 = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 127.5 - 1)
        y0 = y0.permute(2, 0, 1)[None]
        h, w = y0.shape[2:]
        o = args.padding_offset
        y0 = F.pad(y0, (0, math.ceil(w / o) * o - w, 0, math.ceil(h / o) * o - h), mode="reflect")
        with torch.no_grad():
            sr = diffusion.p_sample_loop(y=y0, model=unet, first_stage_model=vq,
                                         clip_denoised=False, model_kwargs={"lq": y0})
        sr = sr[:, :, :h * diffusion.sf, :w * diffusion.sf].clamp(-1, 1)
        image = ((sr[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(image).save(out / path.name)
    return {"folder_seconds": time.perf_counter() - start, "images": len(files)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["forward", "sample", "train", "folder"])
    parser.add_argument("--folder", type=json.loads, help="folder: the LQ images to restore one by one")
    parser.add_argument("--out", type=json.loads, help="folder: where the PNG results go")
    parser.add_argument("--padding_offset", type=json.loads, default=64)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--batch", type=json.loads, default=1)
    parser.add_argument("--size", type=json.loads, default=64, help="LQ size in pixels")
    parser.add_argument("--threads", type=json.loads, default=0)
    parser.add_argument("--iters", type=json.loads, default=3)
    parser.add_argument("--unet", default="resshift_realsrx4_s4_v3.pth")
    parser.add_argument("--vq", default="autoencoder_vq_f4.pth")
    parser.add_argument("--config",
                        default="realsr_swinunet_realesrgan256_journal")
    args = parser.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    unet, vq, diffusion = networks(args.reference, args.unet, args.vq, args.config)
    sf = diffusion.sf
    b, s = args.batch, args.size
    lq = torch.rand(b, 3, s, s) * 2 - 1
    hq = torch.rand(b, 3, s * sf, s * sf) * 2 - 1
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    if args.what == "forward":
        with torch.no_grad():
            z = vq.encode(hq)
            x = torch.randn_like(z)
            t = torch.randint(0, diffusion.num_timesteps, (b,))
            result["unet_forward"] = median_time(lambda: unet(x, t, lq=lq), iters=args.iters)
            result["vq_encode"] = median_time(lambda: vq.encode(hq), iters=args.iters)
            result["vq_decode"] = median_time(lambda: vq.decode(z), iters=args.iters)
    elif args.what == "folder":
        result.update(restore_folder(args, unet, vq, diffusion))
    elif args.what == "sample":
        def chain():
            with torch.no_grad():
                return diffusion.p_sample_loop(y=lq, model=unet, first_stage_model=vq,
                                               clip_denoised=False, model_kwargs={"lq": lq})
        result["chain"] = median_time(chain, iters=args.iters)
    else:
        import lpips
        lpips_net = lpips.LPIPS(net="vgg", pnet_rand=True, pretrained=False, verbose=False).eval()
        for p in list(vq.parameters()) + list(lpips_net.parameters()):
            p.requires_grad_(False)
        unet.train()
        optimizer = torch.optim.AdamW(unet.parameters(), lr=5e-5)

        def step():
            t = torch.randint(0, diffusion.num_timesteps, (b,))
            terms, _, z0 = diffusion.training_losses(unet, hq, lq, t, first_stage_model=vq,
                                                    model_kwargs={"lq": lq})
            x0 = diffusion.decode_first_stage(z0, vq)
            loss = (terms["mse"] + lpips_net(x0.clamp(-1, 1), hq).view(-1)).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        result["train_step"] = median_time(step, iters=args.iters)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
