"""VQ autoencoder: reference parity, released layouts, strict conversion, bf16, gradients."""
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resshift_jax.convert import vq as vq_convert
from resshift_jax.convert.loading import build_model, load_params
from resshift_jax.convert.pth import load_state_dict
from resshift_jax.models.vq_layers import conv3x3
from resshift_jax.parity import nchw, nhwc, relative_error

PARITY = pathlib.Path(__file__).parent / "fixtures" / "parity"
LAYOUTS = {k: v for k, v in json.loads((PARITY / "checkpoint_layouts.json").read_text()).items()
           if v["kind"] == "vq"}


@pytest.fixture(scope="module")
def tiny():
    """(fixture entry, f32 model, variables) of vq_f4_tiny."""
    entry = json.loads((PARITY / "fixtures.json").read_text())["vq_f4_tiny"]
    model = build_model("vq", entry["params"])
    return entry, model, {"params": load_params("vq", PARITY / entry["checkpoint"], model)}


def test_matches_reference(tiny):
    entry, model, v = tiny
    io = np.load(PARITY / entry["io"])
    latent = jax.jit(lambda v, x: model.apply(v, x, method="encode"))(v, nhwc(io["image"]))
    quantized, indices = model.apply(v, latent, method="quantize")
    decode = jax.jit(lambda v, z, plain: model.apply(v, z, force_not_quantize=plain,
                                                     method="decode"), static_argnums=2)
    errors = {"latent": relative_error(nchw(latent), io["latent"]),
              "quantized": relative_error(nchw(quantized), io["quantized"]),
              "decoded": relative_error(nchw(decode(v, latent, False)), io["decoded"]),
              "decoded_unquantized": relative_error(nchw(decode(v, latent, True)),
                                                    io["decoded_unquantized"])}
    print("vq_f4_tiny relative errors:", {k: f"{e:.2e}" for k, e in errors.items()})
    assert max(errors.values()) <= 2e-5, errors
    assert indices.dtype == jnp.int32 and indices.shape == io["indices"].shape
    np.testing.assert_array_equal(np.asarray(indices), io["indices"])


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_released_layout_maps_both_ways(name):
    layout = LAYOUTS[name]
    model = build_model("vq", layout["params"])
    shapes = vq_convert.template(model)
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == layout["n_params"]
    fake = {k: np.broadcast_to(np.zeros((), np.float32), s) for k, s in layout["state_dict"].items()}
    params = vq_convert.vq_params_from_torch(fake, model)
    assert jax.tree.map(np.shape, params) == jax.tree.map(lambda s: s.shape, shapes)
    back = vq_convert.vq_params_to_torch(params, model)
    assert {k: list(v.shape) for k, v in back.items()} == layout["state_dict"]


def test_round_trip_and_strictness(tiny):
    entry, model, v = tiny
    sd = dict(load_state_dict(PARITY / entry["checkpoint"]))
    back = vq_convert.vq_params_to_torch(v["params"], model)
    assert set(back) == set(sd) and all(np.array_equal(back[k], sd[k]) for k in sd)
    missing = {k: x for k, x in sd.items() if k != "quantize.embedding.weight"}
    with pytest.raises(ValueError, match=r"1 missing: quantize\.embedding\.weight"):
        vq_convert.vq_params_from_torch(missing, model)
    extra = dict(sd, **{"loss.discriminator.main.0.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"1 unexpected: loss\.discriminator\.main\.0\.weight"):
        vq_convert.vq_params_from_torch(extra, model)
    wrong = dict(sd, **{"encoder.down.0.downsample.conv.weight": np.zeros((32, 32, 3, 2))})
    with pytest.raises(ValueError, match=r"wrong shape: encoder\.down\.0\.downsample\.conv"
                                         r"\.weight \(32, 32, 3, 2\) \(expected \(32, 32, 3, 3\)"):
        vq_convert.vq_params_from_torch(wrong, model)
    params = jax.tree.map(np.asarray, v["params"])
    params["quantize_embedding"] = {"embedding": np.zeros((65, 3), np.float32)}
    with pytest.raises(ValueError, match="quantize_embedding/embedding"):
        vq_convert.vq_params_to_torch(params, model)


def test_unsupported_architecture_is_refused(tiny):
    entry, _, _ = tiny
    for change, word in (({"tanh_out": True}, "tanh_out"), ({"double_z": True}, "double_z"),
                         ({"chanels": 3}, "unknown"), ({"padding_mode": "mirror"}, "mirror")):
        params = dict(entry["params"], ddconfig=dict(entry["params"]["ddconfig"], **change))
        with pytest.raises(ValueError, match=word):
            vq_convert.template(build_model("vq", params))


class _Conv(nn.Module):
    mode: str

    @nn.compact
    def __call__(self, x):
        return conv3x3(x, 1, self.mode, dtype=jnp.float32, param_dtype=jnp.float32, name="c")


@pytest.mark.parametrize("mode,corner", [("zeros", 0.0), ("reflect", 5.0), ("replicate", 0.0),
                                         ("circular", 15.0)])
def test_padding_mode_follows_torch(mode, corner):
    """A kernel reading the top-left neighbour shows the padded value at the corner."""
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    kernel = jnp.zeros((3, 3, 1, 1)).at[0, 0].set(1.0)
    out = _Conv(mode).apply({"params": {"c": {"kernel": kernel, "bias": jnp.zeros(1)}}}, x)
    assert float(out[0, 0, 0, 0]) == corner and float(out[0, 1, 1, 0]) == 0.0


def test_model_refuses_padding_the_reference_ignores(tiny):
    entry, _, _ = tiny
    params = dict(entry["params"], ddconfig=dict(entry["params"]["ddconfig"],
                                                 padding_mode="reflect"))
    x = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="padding_mode='reflect' is not supported"):
        build_model("vq", params).init(jax.random.key(0), x)
