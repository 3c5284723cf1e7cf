"""PyTorch `UNetModelSwin` state dict <-> Flax params (strict, torch-free).

The Swin blocks' `relative_position_index` and `attn_mask` buffers are derivable: they are
checked against what we compute when present, and never needed.
"""
import re

import jax
import numpy as np

from resshift_jax.convert import naming
from resshift_jax.models.swin import relative_position_index
from resshift_jax.models.unet import example_inputs

_LITERAL = {"patch_embed_proj": "patch_embed.proj", "patch_unembed_proj": "patch_unembed.proj",
            "fc1": "mlp.fc1", "fc2": "mlp.fc2"}
_BUFFER = re.compile(r".*\.blocks\.\d+\.(attn\.relative_position_index|attn_mask)$")


def _rename(component: str) -> str:
    return naming.dotted(component, _LITERAL)


def template(model):
    """Param shapes of `model` without allocating them."""
    return jax.eval_shape(model.init, jax.random.key(0), *example_inputs(model))["params"]


def _check_buffer(name: str, value: np.ndarray) -> None:
    if name.endswith("relative_position_index"):
        window = int(round((value.shape[0]) ** 0.5))
        if not np.array_equal(value, relative_position_index(window)):
            raise ValueError(f"{name}: relative_position_index differs from the Swin definition")


def unet_params_from_torch(state_dict, model):
    """Flax params of `model` from the reference's state dict; ValueError on any mismatch."""
    return naming.params_from_torch(state_dict, template(model), _rename,
                                    derived=lambda n: bool(_BUFFER.match(n)),
                                    check_derived=_check_buffer)


def unet_params_to_torch(params, model=None):
    """The reference's state-dict parameters (no buffers) of Flax `params`."""
    del model
    return naming.params_to_torch(params, _rename)


