"""Run the PyTorch reference in double precision, patching (never copying) its float32 pins.

The reference casts to float32 in a few places whatever its inputs are: its schedule
lookup `models.gaussian_diffusion._extract_into_tensor` (`.float()`), `GroupNorm32`
(normalises `x.float()`), `models.unet.timestep_embedding` (float32 frequencies) and the
UNet's `self.dtype` (float32 unless fp16), to which it casts its input and the LQ branch;
the Swin blocks build their attention masks with torch's default dtype. `double_precision()`
swaps those module attributes for float64 ones and makes float64 the default while active,
and watches every torch call: a float32 (or half) tensor computed inside is a leak, and
`leaks` names the calls that made them, so a pin we did not patch cannot go unnoticed.
Used by tools/dump_reference.py --float64, in the reference's (torch) environment.
"""
import collections
import contextlib
import importlib
import math

import torch
from torch.overrides import TorchFunctionMode

LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


def extract64(arr, timesteps, broadcast_shape):
    """arr[timesteps] (numpy, float64) as a float64 tensor broadcast to `broadcast_shape`."""
    res = torch.as_tensor(arr, dtype=torch.float64, device=timesteps.device)[timesteps]
    return res.reshape(res.shape + (1,) * (len(broadcast_shape) - res.ndim)).expand(broadcast_shape)


def timestep_embedding64(timesteps, dim, max_period=10000):
    """The sinusoidal embedding [cos(t f), sin(t f)], f = max_period^(-k/half), in float64."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) / half * torch.arange(half, dtype=torch.float64))
    args = timesteps[:, None].to(torch.float64) * freqs[None].to(timesteps.device)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class _Float32Watch(TorchFunctionMode):
    """Counts, per torch call, the low-precision floating tensors it returned."""

    def __init__(self):
        super().__init__()
        self.leaks = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(value, torch.Tensor) and value.dtype in LOW_PRECISION:
                self.leaks[getattr(func, "__qualname__", None) or repr(func)] += 1
        return out


@contextlib.contextmanager
def double_precision(*unets):
    """Inside, the reference's diffusion and UNets (already `.double()`) compute in float64.

    Yields the watch; after the block, `watch.leaks` is empty if nothing ran in float32.
    """
    gd = importlib.import_module("models.gaussian_diffusion")
    basic_ops = importlib.import_module("models.basic_ops")
    unet_module = importlib.import_module("models.unet")
    patches = [(gd, "_extract_into_tensor", extract64),
               (basic_ops.GroupNorm32, "forward", torch.nn.GroupNorm.forward),
               (unet_module, "timestep_embedding", timestep_embedding64)]
    patches += [(unet, "dtype", torch.float64) for unet in unets]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    default = torch.get_default_dtype()
    watch = _Float32Watch()
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        torch.set_default_dtype(torch.float64)
        with watch:
            yield watch
    finally:
        torch.set_default_dtype(default)
        for obj, name, value in saved:
            setattr(obj, name, value)
