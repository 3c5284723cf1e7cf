"""The released ResShift models (and SinSR's student): which config, weights and reference yaml.

The one table behind `sample.py --task/--version`, `tools/dump_reference.py` and the
tests. Names, URLs and local file names follow the reference's `inference_resshift.py`;
its inpainting checkpoints are stored locally as `resshift_inpaint_*` although their URLs
say `resshift_inpainting_*` (the reference names them after the task, and so do we).
SinSR's students come from its own release (its inference.py); their architecture and
schedule are ResShift v1's, so their reference yaml is v1's.
This module imports nothing heavy: the reference-side tool loads it in a torch env.
"""
import dataclasses
import importlib
from types import MappingProxyType
from typing import Optional

_RELEASE = "https://github.com/zsyOAOA/ResShift/releases/download/v2.0/"
_SINSR_RELEASE = "https://github.com/wyf0912/SinSR/releases/download/v1.0/"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A released file: its local `filename` and where to download it."""

    filename: str
    url: str

    @property
    def remote_name(self) -> str:
        """The file name a manual download from `url` has."""
        return self.url.rsplit("/", 1)[1]


def _ckpt(filename: str, remote: Optional[str] = None) -> Checkpoint:
    return Checkpoint(filename, _RELEASE + (remote or filename))


CHECKPOINTS = MappingProxyType({
    "vqgan": _ckpt("autoencoder_vq_f4.pth"),
    "vqgan_face256": _ckpt("celeba256_vq_f4_dim3_face.pth"),
    "vqgan_face512": _ckpt("ffhq512_vq_f8_dim8_face.pth"),
    "v1": _ckpt("resshift_realsrx4_s15_v1.pth"),
    "v2": _ckpt("resshift_realsrx4_s15_v2.pth"),
    "v3": _ckpt("resshift_realsrx4_s4_v3.pth"),
    "bicsr": _ckpt("resshift_bicsrx4_s4.pth"),
    "inpaint_imagenet": _ckpt("resshift_inpaint_imagenet_s4.pth",
                              "resshift_inpainting_imagenet_s4.pth"),
    "inpaint_face": _ckpt("resshift_inpaint_face_s4.pth", "resshift_inpainting_face_s4.pth"),
    "faceir": _ckpt("resshift_faceir_s4.pth"),
    "sinsr_v1": Checkpoint("SinSR_v1.pth", _SINSR_RELEASE + "SinSR_v1.pth"),
    "sinsr_v2": Checkpoint("SinSR_v2.pth", _SINSR_RELEASE + "SinSR_v2.pth"),
})


@dataclasses.dataclass(frozen=True)
class Release:
    """A released model: our config (module and argument), its weights, the reference yaml."""

    config: str
    config_arg: Optional[str]
    unet: str
    vq: str
    reference_yaml: str

    def get_config(self):
        module = importlib.import_module(f"configs.{self.config}")
        return module.get_config(self.config_arg) if self.config_arg else module.get_config()


TASKS = ("realsr", "bicsr", "inpaint_imagenet", "inpaint_face", "faceir")
REALSR_VERSIONS = ("v1", "v2", "v3", "sinsr")

RELEASES = MappingProxyType({
    ("realsr", "v1"): Release("realsr_v1", None, "v1", "vqgan", "realsr_swinunet_realesrgan256"),
    ("realsr", "v2"): Release("realsr_v1", "v2", "v2", "vqgan", "realsr_swinunet_realesrgan256"),
    ("realsr", "v3"): Release("realsr_v3", None, "v3", "vqgan",
                              "realsr_swinunet_realesrgan256_journal"),
    ("realsr", "sinsr"): Release("sinsr_v1", None, "sinsr_v1", "vqgan",
                                 "realsr_swinunet_realesrgan256"),
    ("bicsr", None): Release("bicsr", None, "bicsr", "vqgan", "bicx4_swinunet_lpips"),
    ("inpaint_imagenet", None): Release("inpaint_imagenet", None, "inpaint_imagenet", "vqgan",
                                        "inpaint_lama256_imagenet"),
    ("inpaint_face", None): Release("inpaint_face", None, "inpaint_face", "vqgan_face256",
                                    "inpaint_lama256_face"),
    ("faceir", None): Release("faceir", None, "faceir", "vqgan_face512", "faceir_gfpgan512_lpips"),
})


def release(task: str, version: Optional[str] = None) -> Release:
    """The release of `task` (`version` counts for realsr only, as in the reference)."""
    key = (task, version if task == "realsr" else None)
    if key not in RELEASES:
        choices = ", ".join(t if v is None else f"{t} {v}" for t, v in RELEASES)
        raise ValueError(f"no released model for task {task!r} version {version!r} ({choices})")
    return RELEASES[key]
