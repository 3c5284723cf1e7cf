"""PyTorch `VQModelTorch` state dict <-> Flax `VQModel` params (strict, torch-free).

Every tensor of the state dict must be a parameter of the model and every parameter must be
present with its shape. The released autoencoders (checkpoint_layouts.json) hold exactly the
model's parameters (encoder.*, decoder.*, quant_conv.*, post_quant_conv.*,
quantize.embedding.weight): no buffers and no training-loss or discriminator tensors, so
anything else (a `loss.*` key of an LDM training save, the `used` buffer of codebook
remapping) is refused as unexpected.
"""
import re

import jax
from flax import traverse_util

from resshift_jax.convert import naming
from resshift_jax.models.autoencoder import example_inputs

_LITERAL = {"mid_block_1": "mid.block_1", "mid_block_2": "mid.block_2",
            "mid_attn_1": "mid.attn_1", "quantize_embedding": "quantize.embedding"}
_PARTS = re.compile(r"_(block|attn|downsample|upsample)(?=_|$)")


def _rename(component: str) -> str:
    """Flax module name -> torch path: `down_0_block_1` -> `down.0.block.1`."""
    if component in _LITERAL:
        return _LITERAL[component]
    if component.startswith(("down_", "up_")):
        return re.sub(r"_(\d+)", r".\1", _PARTS.sub(r".\1", component))
    return component


def template(model):
    """The model's parameter tree as shapes, without computing anything."""
    return jax.eval_shape(model.init, jax.random.key(0), *example_inputs(model))["params"]


def vq_params_from_torch(state_dict, model):
    """Flax params of `model` from the reference's state dict; ValueError on any mismatch."""
    return naming.params_from_torch(state_dict, template(model), _rename)


def vq_params_to_torch(params, model):
    """The reference's state dict (numpy, torch layouts) of `model`'s Flax params.

    ValueError when `params` is not exactly `model`'s tree (names and shapes).
    """
    want = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(template(model)).items()}
    got = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(params).items()}
    wrong = sorted("/".join(k) for k in set(want) | set(got) if want.get(k) != got.get(k))
    if wrong:
        raise ValueError(f"params do not fit the VQ model: {len(wrong)} differ "
                         f"(missing, extra or wrong shape): {', '.join(wrong[:5])}")
    return naming.params_to_torch(params, _rename)
