"""configs/sinsr_v1.py is SinSR's configs/SinSR.yaml; its student loads the v1 layout strictly;
sample.py's sinsr version, --sampler and --steps."""
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
from PIL import Image

from configs import realsr_v1, realsr_v3
from configs.sinsr_v1 import get_config
from resshift_jax.convert import unet as unet_convert
from resshift_jax.convert.loading import build_model
from resshift_jax.weights import CHECKPOINTS
from tests import one_device

ROOT = pathlib.Path(__file__).resolve().parents[1]
PARITY = ROOT / "tests" / "fixtures" / "parity"


def _plain(x):
    return json.loads(json.dumps(x.to_dict() if hasattr(x, "to_dict") else x))


def test_sinsr_v1_is_sinsr_yaml():
    c, v1 = get_config(), realsr_v1.get_config()
    assert _plain(c.model) == _plain(v1.model) and _plain(c.diffusion) == _plain(v1.diffusion)
    assert c.diffusion.steps == 15 and c.diffusion.min_noise_level == 0.04
    assert _plain(c.distill) == {"teacher_ckpt": "v1", "learn_xT": True, "finetune_use_gt": 1.0}
    t = c.train
    assert (t.lr, t.warmup_iterations, t.lr_schedule, t.batch, t.ema_rate, t.weight_decay) == (
        5e-5, 5000, None, 64, 0.999, 0.0)
    assert t.batch % t.microbatch == 0 and t.compute_dtype == "float32"
    assert _plain(t.loss_coef) == {"mse": 1.0, "lpips": 0.0}
    assert (c.sample.sampler, c.sample.unet_weights) == ("onestep", "sinsr_v1")
    assert CHECKPOINTS["sinsr_v1"].url.endswith("wyf0912/SinSR/releases/download/v1.0/SinSR_v1.pth")


def test_any_teacher_config():
    c = get_config("realsr_v3")
    assert _plain(c.model) == _plain(realsr_v3.get_config().model)
    assert c.distill.teacher_ckpt == "v3" and c.sample.unet_weights is None
    assert c.train.loss_coef["lpips"] == 0.0  # no LPIPS weights needed to distil v3


def test_released_student_layout_maps_strictly():
    """SinSR's UNet is ResShift v1's (the LQ concatenated: in_channels 6 there, our 3 + lq), so
    its student has the v1 layout (file-level `module.` / `state_dict` wrappers: test_pth.py;
    the derivable Swin buffers: test_models.py)."""
    layout = json.loads((PARITY / "checkpoint_layouts.json").read_text())[
        "resshift_realsrx4_s15_v1.pth, _v2.pth"]
    model = build_model("unet", get_config().model)
    state = {k: np.broadcast_to(np.zeros((), np.float32), v)
             for k, v in layout["state_dict"].items()
             if not k.endswith(("attn_mask", "relative_position_index"))}
    params = unet_convert.unet_params_from_torch(state, model)
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) == layout["n_params"]
    assert layout["state_dict"]["input_blocks.0.0.weight"][1] == 6


def _sample(*args):
    cmd = [sys.executable, str(ROOT / "sample.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=one_device.ENV)


def test_sample_py_sinsr_version_and_samplers(tmp_path):
    probe = subprocess.run([sys.executable, "-c", "from resshift_jax import releases; c = releases.release("
                            "'realsr', 'sinsr').get_config(); print(c.sample.sampler, c.sample.unet_weights)"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert probe.stdout.split() == ["onestep", "sinsr_v1"], probe.stderr[-2000:]
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), np.uint8)).save(
        tmp_path / "small.png")
    tiny = ("--config", ROOT / "configs/tiny_test.py", "--unet_ckpt", PARITY / "unet_sr_tiny.pth",
            "--vq_ckpt", PARITY / "vq_f4_tiny.pth", "-i", tmp_path / "small.png")
    bad = _sample(*tiny, "-o", tmp_path / "bad", "--sampler", "onestep", "--steps", "2")
    assert bad.returncode == 2 and "error: --steps 2" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()
    good = _sample(*tiny, "-o", tmp_path / "out", "--sampler", "ddim", "--steps", "2")
    assert good.returncode == 0, good.stderr[-2000:]
    assert "2 ddim steps" in good.stderr
    with Image.open(tmp_path / "out" / "small.png") as im:
        assert im.size == (80, 80)
