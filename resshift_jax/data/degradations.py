"""The registry of training degradations, keyed by the config's `data.train.type`.

A degradation is built as `cls(params, sf, gt_size)` and called as `deg(hq, rng)` on an
HWC float image in [0, 1]; it returns {"hq", "lq"} and, for inpainting, "mask" (HW1 in
{0, 1}, 1 = to fill), all float32 in [0, 1].
"""
import importlib
from types import MappingProxyType

from resshift_jax.data.sources import DataError

DEGRADATIONS = MappingProxyType({
    "realesrgan": "resshift_jax.data.realesrgan:RealESRGANDegradation",
    "bicubic": "resshift_jax.data.bicubic_sr:BicubicDegradation",
    "inpainting": "resshift_jax.data.masks:InpaintingDegradation",
    "gfpgan": "resshift_jax.data.face:FaceDegradation",
})


def degradation_for(data_config, sf: int):
    """The degradation of `data_config.type` at scale `sf` (imported on first use)."""
    kind = data_config.type
    if kind not in DEGRADATIONS:
        raise DataError(f"data.train.type: unknown {kind!r} ({', '.join(DEGRADATIONS)})")
    crop, gt = data_config.get("crop_pad_size"), int(data_config.gt_size)
    if crop and int(crop) != gt and not data_config.get("rescale_gt", False):
        if int(crop) < gt or kind != "realesrgan":
            raise DataError(f"data.train.crop_pad_size={crop} with rescale_gt off: give "
                            f"gt_size ({gt}), or a larger crop with the realesrgan type (its "
                            "LQ/HQ pairs are cropped to gt_size after the degradation)")
    module, name = DEGRADATIONS[kind].split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(dict(data_config.get("params") or {}), int(sf), int(data_config.gt_size))
