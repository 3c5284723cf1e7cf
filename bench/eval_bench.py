"""Images/s of the full metric set (psnr, ssim, lpips, clipiqa, musiq) at 256x256, ours and pyiqa's.

    python -m bench.eval_bench --torch_python /work/venvs/torch-eval/bin/python

Real photographs (../shared/data/imagenet_val_x4: GT and the bicubic x4 of its LQ), random
weights at the released sizes (LPIPS-AlexNet, CLIP RN50, MUSIQ 384x14): the cost does not
depend on the values. Ours: the evaluate metrics on batches of `--batch`, after one
compiling pass. pyiqa's: the same metrics created as SinSR's evaluate.py creates them, one
image at a time as that script runs them, in a subprocess under `--torch_python` (this file
with `--side pyiqa`, which imports only torch and pyiqa), on the same CPU in the same run.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "imagenet_val_x4"


def pairs(n: int):
    import cv2
    import numpy as np
    files = sorted((DATA / "gt").glob("*.png"))[:n]
    gt = [cv2.imread(str(f))[..., ::-1] for f in files]
    pred = [cv2.resize(cv2.imread(str(DATA / "lq" / f.name)), (256, 256),
                       interpolation=cv2.INTER_CUBIC)[..., ::-1] for f in files]
    return np.stack(pred), np.stack(gt)


def _random(params, seed=0):
    import jax
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [0.02 * jax.random.normal(k, x.shape) + (x.ndim == 1)
                                     for k, x in zip(keys, leaves)])


def metric_set(batch: int, tiny: bool = False) -> list:
    """The five evaluate metrics with random weights: at the released sizes (LPIPS-AlexNet,
    CLIP RN50, MUSIQ 384x14), or, `tiny` (the device suite's dry run), small CLIP and MUSIQ."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from resshift_jax.convert.lpips import _expected_shapes, lpips_params_from_torch
    from resshift_jax.convert.musiq import _dummy, musiq_scorer
    from resshift_jax.iqa.registry import Metric, _nr_metric, build_metric
    from resshift_jax.models.clip import CLIPIQA
    from resshift_jax.models.lpips import LPIPS
    from resshift_jax.models.musiq import MUSIQ
    rng = np.random.default_rng(0)
    trunk, lin = (({k: rng.standard_normal(s).astype(np.float32) * 0.05 for k, s in d.items()})
                  for d in _expected_shapes("alex"))
    lp = LPIPS(net="alex")
    lp_params = lpips_params_from_torch(trunk, lin, "alex")
    lp_apply = jax.jit(lambda x, y: lp.apply({"params": lp_params}, x * 2 - 1, y * 2 - 1))
    clip = CLIPIQA((1, 1, 1, 1), 16, 64) if tiny else CLIPIQA((3, 4, 6, 3), 64, 1024)
    clip_params = _random(clip.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))["params"])
    musiq = MUSIQ(32, 64, 2, 1) if tiny else MUSIQ(384, 1152, 6, 14)
    musiq_params = _random(musiq.init(jax.random.key(1), *_dummy())["params"])
    return [build_metric("psnr", batch_size=batch), build_metric("ssim", batch_size=batch),
            Metric("lpips", True, lambda p, g: np.asarray(lp_apply(
                jnp.asarray(np.stack(p) / 255.0, jnp.float32),
                jnp.asarray(np.stack(g) / 255.0, jnp.float32)))),
            _nr_metric("clipiqa", jax.jit(lambda x: clip.apply({"params": clip_params}, x)), batch),
            _nr_metric("musiq", musiq_scorer(musiq, musiq_params), batch)]


def ours(pred, gt, batch: int, iters: int) -> dict:
    import jax
    import numpy as np
    metrics = metric_set(batch)

    def run():
        for start in range(0, len(pred), batch):
            p, g = list(pred[start:start + batch]), list(gt[start:start + batch])
            for m in metrics:
                np.asarray(m.score(p, g))
    run()   # compile
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    dev = jax.devices()[0]
    return {"seconds": sorted(times)[len(times) // 2], "device": f"{dev.platform}:{dev.device_kind}"}


def pyiqa_side(pred, gt, iters: int) -> dict:
    import tempfile
    import torch
    lib = torch.library.Library("torchvision", "DEF")   # CPU torch + PyPI torchvision
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    import pyiqa
    from pyiqa.archs import clip_model, lpips_arch
    lpips_arch.models = type("tv", (), {"alexnet": staticmethod(
        lambda **_: torchvision.models.alexnet(weights=None))})
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        rn50 = clip_model.CLIP(1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12).eval()
        tokens = torch.zeros(1, 77, dtype=torch.int64)
        torch.jit.trace(rn50, (torch.zeros(1, 3, 224, 224), tokens)).save(f"{tmp}/RN50.pt")
        metrics = [pyiqa.create_metric("psnr", test_y_channel=True, color_space="ycbcr", device="cpu"),
                   pyiqa.create_metric("ssim", test_y_channel=True, color_space="ycbcr", device="cpu"),
                   pyiqa.create_metric("lpips", pretrained=False, device="cpu"),
                   pyiqa.create_metric("clipiqa", backbone=f"{tmp}/RN50.pt", pretrained=False,
                                       device="cpu"),
                   pyiqa.create_metric("musiq", pretrained=False, device="cpu")]
    to_t = lambda a: torch.from_numpy(a.astype("float32") / 255.0).permute(2, 0, 1)[None]  # noqa

    def run():
        with torch.no_grad():
            for p, g in zip(pred, gt):
                x, y = to_t(p), to_t(g)
                for i, m in enumerate(metrics):
                    (m(x, y) if i < 3 else m(x)).item()
    run()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return {"seconds": sorted(times)[len(times) // 2], "torch": torch.__version__,
            "pyiqa": pyiqa.__version__, "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--torch_python", help="a Python with torch and pyiqa (omit: ours only)")
    p.add_argument("--side", choices=["ours", "pyiqa"], default="ours")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    pred, gt = pairs(args.images)
    if args.side == "pyiqa":
        print(json.dumps(pyiqa_side(pred, gt, args.iters)))
        return
    rows = {"ours": ours(pred, gt, args.batch, args.iters)}
    if args.torch_python:
        out = subprocess.run([args.torch_python, __file__, "--side", "pyiqa", "--images",
                              str(args.images), "--iters", str(args.iters)],
                             capture_output=True, text=True, check=True).stdout
        rows["pyiqa"] = json.loads(out.strip().splitlines()[-1])
    import platform
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {args.images} images "
          f"256x256, psnr+ssim+lpips+clipiqa+musiq")
    for name, r in rows.items():
        print(f"{name}: {args.images / r['seconds']:.2f} images/s ({r['seconds']:.2f} s) "
              f"{json.dumps({k: v for k, v in r.items() if k != 'seconds'})}")


if __name__ == "__main__":
    main()
