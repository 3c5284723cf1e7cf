"""Every config loads, and its architecture and schedule are the reference's."""
import importlib
import json

import pytest

from resshift_jax import releases
from resshift_jax.tiling import chop_geometry

RELEASED = {  # config -> (checkpoint layout of its UNet, of its autoencoder, schedule yaml)
    "realsr_v3": ("resshift_realsrx4_s4_v3.pth", "autoencoder_vq_f4.pth",
                  "realsr_swinunet_realesrgan256_journal"),
    "realsr_v1": ("resshift_realsrx4_s15_v1.pth, _v2.pth", "autoencoder_vq_f4.pth",
                  "realsr_swinunet_realesrgan256"),
    "bicsr": ("resshift_bicsrx4_s4.pth", "autoencoder_vq_f4.pth", "bicx4_swinunet_lpips"),
    "inpaint_imagenet": ("resshift_inpainting_imagenet_s4.pth", "autoencoder_vq_f4.pth",
                         "inpaint_lama256_imagenet"),
    "inpaint_face": ("resshift_inpainting_face_s4.pth", "celeba256_vq_f4_dim3_face.pth",
                     "inpaint_lama256_face"),
    "faceir": ("resshift_faceir_s4.pth", "ffhq512_vq_f8_dim8_face.pth", "faceir_gfpgan512_lpips"),
    "realsr_x2": (None, "autoencoder_vq_f4.pth", "realsr_realesrgan256_x2"),
}
ALL = list(RELEASED) + ["demo", "tiny_test"]


def _plain(x):
    return json.loads(json.dumps(x.to_dict() if hasattr(x, "to_dict") else x))


def _load(name):
    return importlib.import_module(f"configs.{name}").get_config()


@pytest.mark.parametrize("name", ALL)
def test_config_is_complete(name):
    c = _load(name)
    for field in ("sf", "model", "diffusion", "data", "train", "sample"):
        assert field in c, field
    assert "sf" not in c.diffusion and "sf" not in c.data.train  # the scale factor once
    assert c.train.batch % c.train.microbatch == 0


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_architecture_and_schedule(name, parity_dir):
    c = _load(name)
    layouts = json.loads((parity_dir / "checkpoint_layouts.json").read_text())
    schedules = json.loads((parity_dir / "schedules.json").read_text())
    unet, vq, schedule = RELEASED[name]
    if unet:
        assert _plain(c.model) == layouts[unet]["params"]
    else:
        assert _plain(c.model) == dict(layouts["resshift_realsrx4_s4_v3.pth"]["params"], lq_size=128)
    assert _plain(c.autoencoder.params) == layouts[vq]["params"]
    assert dict(_plain(c.diffusion), sf=c.sf) == schedules[schedule]["params"]


def test_v2_differs_only_in_weights():
    v1, v2 = _load("realsr_v1"), importlib.import_module("configs.realsr_v1").get_config("v2")
    assert v2.sample.unet_weights == "v2"
    v2.sample.unet_weights = "v1"
    assert v1.to_dict() == v2.to_dict()


def test_tiny_test_matches_the_fixtures(parity_dir):
    c = _load("tiny_test")
    entries = json.loads((parity_dir / "fixtures.json").read_text())
    assert _plain(c.model) == entries["unet_sr_tiny"]["params"]
    assert _plain(c.autoencoder.params) == entries["vq_f4_tiny"]["params"]
    assert dict(_plain(c.diffusion), sf=c.sf) == entries["sampler_tiny"]["diffusion"]


@pytest.mark.parametrize("size, stride, sf, expected", [
    (512, -1, 4, (512, 448)), (256, -1, 4, (256, 224)), (64, -1, 4, (64, 48)),
    (512, -1, 1, (2048, 1792)), (512, -1, 2, (1024, 896)), (100, 80, 4, (100, 80))])
def test_chop_geometry_follows_the_reference(size, stride, sf, expected):
    assert chop_geometry(size, stride, sf) == expected


def test_chop_geometry_unknown_size_needs_stride():
    with pytest.raises(ValueError, match="chop_stride"):
        chop_geometry(300, -1, 4)


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_weights_and_tiling(name):
    """The weight keys name the checkpoints whose layouts the architecture test checks, and
    tiling follows the reference: default tile sizes, padding to the model's lq_size."""
    from resshift_jax.releases import CHECKPOINTS
    c = _load(name)
    unet, vq, _ = RELEASED[name]
    released = {key: ckpt.remote_name for key, ckpt in CHECKPOINTS.items()}
    if unet:
        assert unet.startswith(released[c.sample.unet_weights])
    else:
        assert c.sample.unet_weights is None
    assert released[c.autoencoder.ckpt] == vq
    assert c.sample.padding_offset == c.model.lq_size
    size, stride = chop_geometry(c.sample.chop_size, c.sample.chop_stride, c.sf)
    assert (size, stride) == ((512, 448) if c.sf == 4 else (512 * 4 // c.sf, 448 * 4 // c.sf))
    assert c.sample.seed == 12345 and c.sample.compute_dtype == "float32"
    assert c.sample.mask_back == bool(c.model.get("cond_mask", False))


def test_demo_is_small_and_pixel_space():
    """The demo must train on a 2-core CPU in minutes: pixel space, < 2M UNet parameters,
    and 4 steps."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from resshift_jax.convert.loading import build_model

    c = _load("demo")
    assert c.autoencoder is None and c.diffusion.latent_flag is False
    assert c.diffusion.steps == 4 and c.train.iterations <= 600
    gt = c.data.train.gt_size
    unet = build_model("unet", c.model)
    x = jnp.zeros((1, gt, gt, 3))
    shapes = jax.eval_shape(lambda: unet.init(jax.random.key(0), x, jnp.zeros((1,)), lq=x))
    n = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(shapes))
    assert 1e5 < n < 2e6, n


def test_release_table_names_configs_weights_and_yamls():
    """The one table of released tasks: each entry's config carries its weights, and the
    reference yaml is the schedule the architecture test checks."""
    schedule_of = {name: spec[2] for name, spec in RELEASED.items()}
    schedule_of["sinsr_v1"] = schedule_of["realsr_v1"]  # SinSR's student: v1's network
    for (task, version), rel in releases.RELEASES.items():
        c = rel.get_config()
        assert rel.unet == c.sample.unet_weights and rel.vq == c.autoencoder.ckpt
        assert rel.reference_yaml == schedule_of[rel.config]
        assert releases.release(task, version) is rel
    assert {t for t, _ in releases.RELEASES} == set(releases.TASKS)
    with pytest.raises(ValueError, match="no released model"):
        releases.release("realsr", "v9")
