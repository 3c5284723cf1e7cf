"""SinSR distillation in the real train loop, on a micro pixel-space teacher (random weights).

The loss itself is checked against SinSR's code in test_sinsr_parity.py (tiny_test's
architecture and fixture weights); here a 8x8 (x2) UNet keeps a few hundred steps cheap.
"""
import dataclasses
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.sinsr_v1 import get_config
from resshift_jax.convert.loading import save_converted
from resshift_jax.data.imresize import imresize
from resshift_jax.data.sources import SkimageSource
from resshift_jax.models.unet import example_inputs
from resshift_jax.sampling import make_restore_fn
from resshift_jax.builder import restorer_from_config
from resshift_jax import sharding
from resshift_jax.train import distill
from resshift_jax.train.checkpoints import Checkpointer
from resshift_jax.train.experiment import SetupError
from resshift_jax.train.loop import train_and_evaluate

MICRO = dict(image_size=8, in_channels=3, model_channels=32, out_channels=3,
             attention_resolutions=(), dropout=0, channel_mult=(1,), num_res_blocks=(1,),
             conv_resample=True, dims=2, use_fp16=False, num_head_channels=32,
             use_scale_shift_norm=True, resblock_updown=False, swin_depth=1, swin_embed_dim=32,
             window_size=8, mlp_ratio=1, cond_lq=True, lq_size=8)


def micro_config():
    """sinsr_v1:tiny_test with a micro pixel-space teacher: 8x8 HQ, x2, 4 steps."""
    c = get_config("tiny_test")
    c.model = MICRO
    c.autoencoder = None
    c.sf = 2
    c.diffusion.update(dict(latent_flag=False, min_noise_level=0.04))
    c.data.train.update(dict(type="bicubic", gt_size=8, crop_pad_size=8, params={}))
    c.data.val = dict(type="skimage", names=("chelsea",), gt_size=16, max_images=1)
    c.train.update(dict(lr=2e-3, lr_schedule=None, warmup_iterations=10, batch=8, microbatch=8,
                        iterations=2, save_freq=100, val_freq=2, keep_checkpoints=2, seed=0))
    return c


def photo_crops(names, n, seed):
    """n (HQ 8x8, LQ 4x4) pairs in [-1, 1]: photographs shrunk 8x, then MATLAB-bicubic x2."""
    rng = np.random.default_rng(seed)
    photos, hq = SkimageSource(names).images, []
    for i in range(n):
        img = photos[i % len(photos)]
        y, x = rng.integers(0, img.shape[0] - 64), rng.integers(0, img.shape[1] - 64)
        hq.append(np.clip(imresize(img[y:y + 64, x:x + 64].astype(np.float32) / 255, 1 / 8), 0, 1))
    lq = [np.clip(imresize(h, 1 / 2), 0, 1) for h in hq]
    return np.stack(hq) * 2 - 1, np.stack(lq) * 2 - 1


class Crops:
    """The same 32 crops in batches of 4, forever; resumable by batch index."""

    def __init__(self):
        self.hq, self.lq = photo_crops(("astronaut", "coffee", "rocket"), 32, 0)
        self.index = 0

    def __next__(self):
        i = (self.index * 4) % 32
        self.index += 1
        return {"hq": self.hq[i:i + 4], "lq": self.lq[i:i + 4]}

    def get_state(self):
        return {"index": self.index}

    def set_state(self, state):
        self.index = int(state["index"])


def test_one_step_student_moves_to_the_teachers_chain_and_resumes_exactly(tmp_path):
    """150 steps at lr 2e-3: on held-out crops (fixed x_T) the student's one step is
    0.25 MSE from the teacher's 4-step ddim output, the teacher's own one step 0.42."""
    c = micro_config()
    c.train.update(dict(batch=4, microbatch=4, iterations=150, val_freq=10 ** 6))
    restorer = restorer_from_config(c, jnp.float32)
    teacher = jax.jit(restorer.unet.init)(jax.random.key(1), *example_inputs(restorer.unet))["params"]
    mesh = sharding.make_mesh(jax.devices()[:1])
    loss_fn = distill.make_distill_loss(restorer)

    def train(workdir):
        return jax.device_get(train_and_evaluate(
            c, workdir, init_params=teacher, loss_fn=loss_fn, data_iterator=Crops(),
            frozen={"teacher": teacher}, mesh=mesh))
    straight = train(tmp_path / "straight")

    _, lq = photo_crops(("chelsea",), 8, 1)
    key = jax.random.key(7)
    one_step = make_restore_fn(dataclasses.replace(restorer, sampler="onestep"))
    chain = make_restore_fn(dataclasses.replace(restorer, sampler="ddim"))(
        {"unet": teacher}, jnp.asarray(lq), key=key)

    def gap(params):
        return float(jnp.mean((one_step({"unet": params}, jnp.asarray(lq), key=key) - chain) ** 2))
    teacher_gap, student_gap = gap(teacher), gap(straight.params)
    assert student_gap < 0.7 * teacher_gap, (student_gap, teacher_gap)

    resumed_dir = tmp_path / "resumed" / "checkpoints"  # killed after its step-100 save
    resumed_dir.mkdir(parents=True)
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "100", resumed_dir / "100")
    resumed = train(tmp_path / "resumed")
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_train_py_distils_from_a_file_or_a_workdir_teacher(tmp_path):
    from train import run
    c = micro_config()
    restorer = restorer_from_config(c, jnp.float32)
    teacher = jax.jit(restorer.unet.init)(jax.random.key(1), *example_inputs(restorer.unet))["params"]
    c.distill.teacher_ckpt = str(save_converted(tmp_path / "teacher.safetensors", "unet",
                                                c.model, teacher))
    state = run(c, str(tmp_path / "run"))
    assert int(state.step) == 2
    assert Checkpointer(tmp_path / "run" / "checkpoints").latest_step() == 2
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), state.params,
                                         teacher))
    assert max(moved) > 0  # the student trained, starting from the teacher

    c.distill.teacher_ckpt = str(tmp_path / "run")  # a workdir: its latest EMA params
    from_workdir = distill.load_teacher(c, restorer)
    for a, b in zip(jax.tree.leaves(from_workdir), jax.tree.leaves(state.ema_params)):
        np.testing.assert_array_equal(a, b)

    c.distill.teacher_ckpt = str(tmp_path / "nowhere.pth")
    with pytest.raises(SetupError, match="distill.teacher_ckpt: .*nowhere.pth"):
        distill.load_teacher(c, restorer)
    wrong = micro_config()
    wrong.model = dict(MICRO, model_channels=64)
    wrong.distill.teacher_ckpt = str(tmp_path / "run")
    with pytest.raises(SetupError, match="do not fit this architecture"):
        distill.load_teacher(wrong, restorer_from_config(wrong, jnp.float32))


@pytest.mark.parametrize("coef", [{"mse": 5.0}, {"lpips": 1.0}])
def test_loss_coef_distillation_would_ignore_is_refused_before_any_weights(tmp_path, monkeypatch,
                                                                          coef):
    """SinSR's loss has no coefficients and no LPIPS term: mse=5 trained as mse=1, and lpips > 0
    loaded LPIPS weights nothing used. train.py and `distill.setup` refuse it in one line,
    before reading the teacher's or any frozen weights."""
    from train import run
    c = micro_config()
    c.train.loss_coef.update(coef)
    c.distill.teacher_ckpt = str(tmp_path / "nowhere.pth")  # read first, it would say so
    monkeypatch.setattr("resshift_jax.train.experiment.load_frozen",
                        lambda *a: pytest.fail("frozen weights loaded"))
    with pytest.raises(SetupError, match=r"^train.loss_coef=.*: distillation has SinSR's loss "
                                         r"only \(mse=1.0, lpips=0.0\)"):
        run(c, str(tmp_path / "run"))
    with pytest.raises(SetupError, match="train.loss_coef="):
        distill.setup(c, restorer_from_config(c, jnp.float32), {})
    distill.check_loss_coef(micro_config().train)
