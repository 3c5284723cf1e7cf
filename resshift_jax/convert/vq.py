"""PyTorch `VQModelTorch` state dict <-> Flax `VQModel` params (strict, torch-free)."""
import re

import jax

from resshift_jax.convert import naming
from resshift_jax.models.autoencoder import example_inputs

_LITERAL = {"mid_block_1": "mid.block_1", "mid_block_2": "mid.block_2",
            "mid_attn_1": "mid.attn_1", "quantize_embedding": "quantize.embedding"}
_PARTS = re.compile(r"_(block|attn|downsample|upsample|conv)(?=_|$)")


def _rename(component: str) -> str:
    if component in _LITERAL:
        return _LITERAL[component]
    if component.startswith(("down_", "up_")):
        return re.sub(r"_(\d+)", r".\1", _PARTS.sub(r".\1", component))
    return component


def template(model):
    return jax.eval_shape(model.init, jax.random.key(0), *example_inputs(model))["params"]


def vq_params_from_torch(state_dict, model):
    """Flax params of `model` from the reference's state dict; ValueError on any mismatch."""
    return naming.params_from_torch(state_dict, template(model), _rename)


def vq_params_to_torch(params, model=None):
    del model
    return naming.params_to_torch(params, _rename)
