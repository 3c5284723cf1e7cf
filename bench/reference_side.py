"""Time the PyTorch reference (imported from the user's checkout) for the benchmarks.

Run by bench/*.py under a Python with torch; prints one JSON line of median seconds.
Nothing of the reference is copied here: it is imported from `--reference`.

    python bench/reference_side.py forward --reference ~/ResShift --batch 1
    python bench/reference_side.py suite --reference ~/ResShift --chain_batches [1,64] \
        --train_batches [16] --amp true   # a header line, then one line per measurement

On a GPU (`--device cuda`, the default when torch sees one) timings synchronise the device
and `--amp true` runs under fp16 autocast with a GradScaler for training, as the
reference's `use_amp: True` configs do. `--arch` gives the architecture (the device suite
passes its config's; default: the released v3 layouts). Needs torch, timm, einops, PyYAML
and, to train, lpips; not omegaconf.
"""
import argparse
import contextlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import LAYOUTS, median_time  # noqa: E402  (no project dependency: stdlib only)

def architectures(unet_ckpt: str, vq_ckpt: str, arch=None):
    """(UNet kwargs, VQ kwargs): `arch` ({"unet": ..., "vq": ...}), else the released
    checkpoints' layouts."""
    if arch:
        return arch["unet"], arch["vq"]
    layouts = json.loads(LAYOUTS.read_text())
    return layouts[unet_ckpt]["params"], layouts[vq_ckpt]["params"]


_TORCHVISION_OPS = []


def import_torchvision():
    """Import torchvision (timm and lpips need it). A torchvision built for another torch
    lacks its C++ ops ("operator torchvision::nms does not exist"): declare the two its
    import registers, and import it again (none of its ops is used here)."""
    import torch
    try:
        import torchvision  # noqa: F401
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_OPS.append(lib)
        import torchvision  # noqa: F401


def networks(reference, unet_params, vq_params, config):
    """Random-weight reference UNet and VQ at the given architecture, and its diffusion."""
    import torch
    import yaml
    import_torchvision()
    sys.path.insert(0, reference)
    from ldm.models.autoencoder import VQModelTorch
    from models.script_util import create_gaussian_diffusion
    from models.unet import UNetModelSwin
    torch.manual_seed(0)
    unet = UNetModelSwin(**unet_params).eval()
    vq = VQModelTorch(**vq_params).eval()
    path = pathlib.Path(reference) / "configs" / f"{config}.yaml"
    diffusion_params = yaml.safe_load(path.read_text())["diffusion"]["params"]
    return unet, vq, create_gaussian_diffusion(**diffusion_params)


class Side:
    """The reference's networks on one device, with its chain and training step."""

    def __init__(self, args):
        import torch
        self.torch = torch
        self.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.amp = bool(args.amp) and self.device == "cuda"
        unet_params, vq_params = architectures(args.unet, args.vq, args.arch)
        unet, vq, self.diffusion = networks(args.reference, unet_params, vq_params, args.config)
        self.unet, self.vq = unet.to(self.device), vq.to(self.device)
        self.sf, self.size, self.iters = self.diffusion.sf, args.size, args.iters

    def autocast(self):
        if self.amp:
            return self.torch.autocast("cuda", dtype=self.torch.float16)
        return contextlib.nullcontext()

    def inputs(self, b):
        s, sf, dev = self.size, self.sf, self.device
        return (self.torch.rand(b, 3, s, s, device=dev) * 2 - 1,
                self.torch.rand(b, 3, s * sf, s * sf, device=dev) * 2 - 1)

    def timed(self, fn) -> dict:
        """{"seconds": median, "peak_bytes": device peak during it (GPU only)}."""
        cuda = self.device == "cuda"
        if cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

        def run():
            fn()
            if cuda:
                self.torch.cuda.synchronize()
        seconds = median_time(run, iters=self.iters)
        return {"seconds": seconds,
                "peak_bytes": self.torch.cuda.max_memory_allocated() if cuda else None}

    def forward(self, b) -> dict:
        lq, hq = self.inputs(b)
        with self.torch.no_grad(), self.autocast():
            z = self.vq.encode(hq)
            x = self.torch.randn_like(z)
            t = self.torch.randint(0, self.diffusion.num_timesteps, (b,), device=self.device)
            return {"unet_forward": self.timed(lambda: self.unet(x, t, lq=lq))["seconds"],
                    "vq_encode": self.timed(lambda: self.vq.encode(hq))["seconds"],
                    "vq_decode": self.timed(lambda: self.vq.decode(z))["seconds"]}

    def chain(self, b) -> dict:
        lq, _ = self.inputs(b)

        def run():
            with self.torch.no_grad(), self.autocast():
                return self.diffusion.p_sample_loop(y=lq, model=self.unet, first_stage_model=self.vq,
                                                    clip_denoised=False, model_kwargs={"lq": lq})
        return self.timed(run)

    def train(self, b) -> dict:
        import lpips
        torch = self.torch
        lpips_net = lpips.LPIPS(net="vgg", pnet_rand=True, pretrained=False,
                                verbose=False).eval().to(self.device)
        for p in list(self.vq.parameters()) + list(lpips_net.parameters()):
            p.requires_grad_(False)
        self.unet.train()
        optimizer = torch.optim.AdamW(self.unet.parameters(), lr=5e-5)
        scaler = torch.amp.GradScaler("cuda") if self.amp else None
        lq, hq = self.inputs(b)

        def step():
            t = torch.randint(0, self.diffusion.num_timesteps, (b,), device=self.device)
            with self.autocast():
                terms, _, z0 = self.diffusion.training_losses(
                    self.unet, hq, lq, t, first_stage_model=self.vq, model_kwargs={"lq": lq})
                x0 = self.diffusion.decode_first_stage(z0, self.vq)
                loss = (terms["mse"] + lpips_net(x0.clamp(-1, 1), hq).view(-1)).mean()
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            optimizer.zero_grad()
        result = self.timed(step)
        self.unet.eval()
        return result


def restore_folder(args, side: Side) -> dict:
    """Wall seconds of the reference sampler's per-image path over a folder on the side's
    device: read, reflect-pad to a multiple of padding_offset, the chain with VQ
    encode/decode (under fp16 autocast with `--amp true` on a GPU, as its inference script
    runs it), crop, clamp, write PNG (its ResShiftSampler.sample_func; images within its
    chop size)."""
    import math
    import time

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in pathlib.Path(args.folder).iterdir() if p.suffix == ".png")
    sf = side.diffusion.sf
    start = time.perf_counter()
    for path in files:
        y0 = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 127.5 - 1)
        y0 = y0.permute(2, 0, 1)[None].to(side.device)
        h, w = y0.shape[2:]
        o = args.padding_offset
        y0 = F.pad(y0, (0, math.ceil(w / o) * o - w, 0, math.ceil(h / o) * o - h), mode="reflect")
        with torch.no_grad(), side.autocast():
            sr = side.diffusion.p_sample_loop(y=y0, model=side.unet, first_stage_model=side.vq,
                                              clip_denoised=False, model_kwargs={"lq": y0})
        sr = sr[:, :, :h * sf, :w * sf].float().clamp(-1, 1)
        image = ((sr[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(image).save(out / path.name)
    return {"folder_seconds": time.perf_counter() - start, "images": len(files)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["forward", "sample", "train", "suite", "folder"])
    parser.add_argument("--folder", type=json.loads, help="folder: the LQ images to restore one by one")
    parser.add_argument("--out", type=json.loads, help="folder: where the PNG results go")
    parser.add_argument("--padding_offset", type=json.loads, default=64)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--batch", type=json.loads, default=1)
    parser.add_argument("--chain_batches", type=json.loads, default=[1], help="suite: JSON list")
    parser.add_argument("--train_batches", type=json.loads, default=[], help="suite: JSON list")
    parser.add_argument("--size", type=json.loads, default=64, help="LQ size in pixels")
    parser.add_argument("--threads", type=json.loads, default=0)
    parser.add_argument("--iters", type=json.loads, default=3)
    parser.add_argument("--device", type=json.loads, default=None, help='"cpu" or "cuda"')
    parser.add_argument("--amp", type=json.loads, default=False, help="fp16 autocast on cuda")
    parser.add_argument("--arch", type=json.loads, default=None,
                        help='JSON {"unet": UNetModelSwin kwargs, "vq": VQModelTorch kwargs}')
    parser.add_argument("--unet", default="resshift_realsrx4_s4_v3.pth")
    parser.add_argument("--vq", default="autoencoder_vq_f4.pth")
    parser.add_argument("--config",
                        default="realsr_swinunet_realesrgan256_journal")
    args = parser.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    side = Side(args)
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__,
              "device": side.device, "amp": "fp16" if side.amp else "off"}
    if side.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    if args.what == "forward":
        result.update(side.forward(args.batch))
    elif args.what == "folder":
        result.update(restore_folder(args, side))
    elif args.what == "sample":
        result["chain"] = side.chain(args.batch)["seconds"]
    elif args.what == "train":
        result["train_step"] = side.train(args.batch)["seconds"]
    else:  # the header, then one line per measurement as it completes
        print(json.dumps(result), flush=True)
        for what, batches in (("chain", args.chain_batches), ("train", args.train_batches)):
            for b in batches:
                print(json.dumps({"what": what, "batch": b, **getattr(side, what)(b)}), flush=True)
        return
    print(json.dumps(result))


if __name__ == "__main__":
    main()
