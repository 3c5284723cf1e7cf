"""CLIP RN50 weights for pyiqa's `clipiqa`, from the file the `clip` package downloads.

`RN50.pt` (OpenAI's TorchScript archive, fp16) or a state-dict `.pth` with the same keys.
As pyiqa's `clip_model.build_model` does, the conv / linear / attention weights and the text
projection are rounded to float16 (`convert_weights`) and everything is then used in float32;
the prompts' text features are computed once here.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.convert.pth import CheckpointError
from resshift_jax.convert.torchscript import load_tensors
from resshift_jax.models.clip import CLIPIQA, TextEncoder, prompt_tokens
from resshift_jax.models.torch_layers import state_dict_to_params

CLIP_FILE = "RN50.pt"
CLIP_URL = ("https://openaipublic.azureedge.net/clip/models/afeb0e10f9e5a86da6080e35cf09123aca3b"
            "358a0c3e3b6c78a7b63bc04b6762/RN50.pt")
_HALF = re.compile(r"((conv\d|downsample\.0|_proj|c_fc|c_proj)\.(weight|bias)|in_proj_(weight|bias)"
                   r"|^text_projection)$")
_UNUSED = ("num_batches_tracked", "attnpool.positional_embedding", "attn_mask", "input_resolution",
           "context_length", "vocab_size")


def _as_pyiqa(state_dict: dict) -> dict:
    out = {}
    for key, value in state_dict.items():
        value = np.asarray(value, np.float32)
        out[key] = value.astype(np.float16).astype(np.float32) if _HALF.search(key) else value
    return out


def _config(sd: dict) -> dict:
    if "visual.proj" in sd:
        raise ValueError("a ViT CLIP; pyiqa's clipiqa uses the RN50 backbone")
    try:
        layers = tuple(len({k.split(".")[2] for k in sd if k.startswith(f"visual.layer{b}.")})
                       for b in (1, 2, 3, 4))
        return dict(layers=layers, width=sd["visual.layer1.0.conv1.weight"].shape[0],
                    embed_dim=sd["text_projection"].shape[1],
                    vocab_size=sd["token_embedding.weight"].shape[0],
                    context_length=sd["positional_embedding"].shape[0],
                    text_width=sd["ln_final.weight"].shape[0],
                    text_layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}))
    except KeyError as e:
        raise ValueError(f"not a CLIP ResNet state dict (no {e.args[0]})") from None


def clipiqa_from_state_dict(state_dict: dict):
    """(CLIPIQA module, params) from CLIP's state dict; ValueError if it is not CLIP RN."""
    sd = _as_pyiqa(state_dict)
    cfg = _config(sd)
    sd = {k: v for k, v in sd.items() if not any(k.endswith(u) for u in _UNUSED)}
    text = TextEncoder(cfg["vocab_size"], cfg["context_length"], cfg["text_width"],
                       cfg["text_layers"], cfg["embed_dim"])
    text_params = {"token_embedding": sd["token_embedding.weight"],
                   "positional_embedding": sd["positional_embedding"],
                   "text_projection": sd["text_projection"],
                   **state_dict_to_params({k: v for k, v in sd.items()
                                           if k.startswith(("transformer.", "ln_final."))})}
    text_features = jax.jit(text.apply)({"params": jax.tree.map(jnp.asarray, text_params)},
                                        jnp.asarray(prompt_tokens(cfg["context_length"])))
    params = {"visual": state_dict_to_params({k: v for k, v in sd.items()
                                              if k.startswith("visual.")})["visual"],
              "text_features": text_features, "logit_scale": jnp.asarray(sd["logit_scale"])}
    model = CLIPIQA(cfg["layers"], cfg["width"], cfg["embed_dim"])
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))["params"]
    if jax.tree.structure(shapes) != jax.tree.structure(params) or any(
            a.shape != b.shape for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(params))):
        raise ValueError("CLIP state dict does not fit the RN architecture its shapes describe")
    return model, params


def load_clipiqa(path):
    """(CLIPIQA module, params) from the user's RN50.pt; CheckpointError names the file."""
    try:
        return clipiqa_from_state_dict(load_tensors(path))
    except CheckpointError:
        raise  # names the file already
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
