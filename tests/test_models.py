"""UNet against the reference fixtures and every released layout (the VQ model: test_vq.py)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resshift_jax.convert import unet as unet_convert
from resshift_jax.convert.loading import build_model, load_params
from resshift_jax.convert.pth import load_state_dict
from resshift_jax.parity import nchw, nhwc, relative_error

LAYOUTS = "checkpoint_layouts.json"
BUFFERS = ("relative_position_index", "attn_mask")


def _fixtures(parity_dir):
    return json.loads((parity_dir / "fixtures.json").read_text())


def _fake_state_dict(layout: dict) -> dict:
    """Zero tensors of the layout's shapes (derivable buffers left out), not allocated."""
    return {k: np.broadcast_to(np.zeros((), np.float32), v) for k, v in layout.items()
            if not k.endswith(BUFFERS)}


@pytest.mark.parametrize("name", ["unet_sr_tiny", "unet_inpaint_tiny"])
def test_unet_matches_reference(parity_dir, name):
    entry = _fixtures(parity_dir)[name]
    model = build_model("unet", entry["params"])
    params = load_params("unet", parity_dir / entry["checkpoint"], model)
    io = np.load(parity_dir / entry["io"])
    mask = nhwc(io["mask"]) if "mask" in io else None
    out = jax.jit(model.apply)({"params": params}, nhwc(io["x"]), io["t"], nhwc(io["lq"]), mask)
    assert relative_error(nchw(out), io["out"]) < 2e-5


@pytest.mark.parametrize("checkpoint", [k for k, v in json.loads(
    (__import__("pathlib").Path(__file__).parent / "fixtures/parity" / LAYOUTS).read_text()).items()
    if v["kind"] == "unet"])
def test_released_layout_maps_both_ways(parity_dir, checkpoint):
    layout = json.loads((parity_dir / LAYOUTS).read_text())[checkpoint]
    model = build_model("unet", layout["params"])
    shapes = unet_convert.template(model)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    assert n_params == layout["n_params"]
    params = unet_convert.unet_params_from_torch(_fake_state_dict(layout["state_dict"]), model)
    assert jax.tree.map(np.shape, params) == jax.tree.map(lambda s: s.shape, shapes)
    back = unet_convert.unet_params_to_torch(params, model)
    buffers = {k for k in layout["state_dict"] if k.endswith(BUFFERS)}
    assert set(back) == set(layout["state_dict"]) - buffers
    assert all(list(back[k].shape) == layout["state_dict"][k] for k in back)


def test_strict_mapping_names_the_problem(parity_dir):
    entry = _fixtures(parity_dir)["unet_sr_tiny"]
    model = build_model("unet", entry["params"])
    sd = dict(load_state_dict(parity_dir / entry["checkpoint"]))
    missing = dict(sd)
    del missing["out.2.weight"]
    with pytest.raises(ValueError, match=r"1 missing: out\.2\.weight"):
        unet_convert.unet_params_from_torch(missing, model)
    extra = dict(sd, **{"extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"1 unexpected: extra\.weight"):
        unet_convert.unet_params_from_torch(extra, model)
    wrong = dict(sd, **{"time_embed.0.bias": np.zeros(7, np.float32)})
    with pytest.raises(ValueError, match=r"wrong shape: time_embed\.0\.bias \(7,\)"):
        unet_convert.unet_params_from_torch(wrong, model)
    bad_index = {k: (v + 1 if k.endswith("relative_position_index") else v) for k, v in sd.items()}
    with pytest.raises(ValueError, match="relative_position_index"):
        unet_convert.unet_params_from_torch(bad_index, model)


def test_unet_runs_larger_than_configured_and_in_bf16(parity_dir):
    entry = _fixtures(parity_dir)["unet_sr_tiny"]
    f32 = build_model("unet", entry["params"])
    params = load_params("unet", parity_dir / entry["checkpoint"], f32)
    key = jax.random.key(0)
    x = jax.random.normal(key, (1, 64, 96, 3))
    lq = jax.random.uniform(key, (1, 64, 96, 3), minval=-1, maxval=1)
    t = jnp.array([2])
    out = jax.jit(f32.apply)({"params": params}, x, t, lq)
    assert out.shape == (1, 64, 96, 3) and bool(jnp.all(jnp.isfinite(out)))
    bf16 = build_model("unet", entry["params"], dtype=jnp.bfloat16)
    out16 = jax.jit(bf16.apply)({"params": params}, x, t, lq)
    assert out16.dtype == jnp.float32
    assert relative_error(out16, out) < 0.1
