"""Read PyTorch `.pth` checkpoints with the standard library and numpy only.

Both of torch's on-disk formats are handled: the zip archive (`data.pkl` plus one raw
file per storage, torch >= 1.6) and the legacy stream (pickle header, object pickle,
storage keys, raw storages). The unpickler is restricted to the handful of globals a
state dict needs, so loading a checkpoint never executes arbitrary code.
"""
import collections
import io
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np


class CheckpointError(ValueError):
    """A file that is not a readable PyTorch state-dict checkpoint."""


_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    """Equivalent of torch._utils._rebuild_tensor_v2 on a flat numpy storage."""
    if not size:
        return np.array(storage[offset])
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *_unused):
    return data


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals a state dict uses; anything else is refused."""

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_maybe_lazy
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name == "device":
            return str
        raise pickle.UnpicklingError(f"unsupported object {module}.{name} in checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._load_storage(pid[1], str(pid[2]), pid[4] if len(pid) > 4 else None)


def _load_zip(path: str, unpickler=None):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise CheckpointError(f"{path}: zip file without data.pkl, not a PyTorch checkpoint")
        root = pkl[0][: -len("data.pkl")]
        cache = {}

        def load_storage(storage_type, key, _numel):
            if key not in cache:
                raw = archive.read(f"{root}data/{key}")
                cache[key] = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<"))
            return cache[key]

        return (unpickler or _Unpickler)(io.BytesIO(archive.read(pkl[0])), load_storage).load()


class _PlainUnpickler(pickle.Unpickler):
    """Plain values only (the legacy header: magic number, version, sys info, storage keys)."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unsupported object {module}.{name} in checkpoint header")


def _load_legacy(path: str):
    with open(path, "rb") as f:
        if _PlainUnpickler(f).load() != _LEGACY_MAGIC:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        _PlainUnpickler(f).load()  # protocol version
        _PlainUnpickler(f).load()  # sys info
        pending = {}

        def load_storage(storage_type, key, _numel):
            pending.setdefault(key, [storage_type, None])
            return _LazyStorage(pending, key)

        obj = _Unpickler(f, load_storage).load()
        keys = _PlainUnpickler(f).load()
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            dtype = pending[key][0].dtype
            pending[key][1] = np.frombuffer(f.read(numel * dtype.itemsize), dtype=dtype)
    return _resolve_lazy(obj)


class _LazyStorage:
    """Placeholder for a legacy storage whose bytes follow the object pickle."""

    def __init__(self, pending, key):
        self.pending, self.key = pending, key


def _resolve_lazy(obj):
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return type(obj)((k, _resolve_lazy(v)) for k, v in obj.items())
    return obj


class _LazyTensor:
    def __init__(self, storage, args):
        self.storage, self.args = storage, args

    def materialize(self):
        return _rebuild_tensor(self.storage.pending[self.storage.key][1], *self.args)


def _rebuild_maybe_lazy(storage, *args):
    if isinstance(storage, _LazyStorage):
        return _LazyTensor(storage, args)
    return _rebuild_tensor(storage, *args)


def _unwrap(obj, path: str) -> dict:
    """Strip the wrappers found in the wild: {'state_dict': ...}, module., _orig_mod."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: checkpoint holds no state dict")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor")
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def _starts_as_zip(path: str) -> bool:
    """Whether the file begins with a zip entry header (torch.save's format since 1.6)."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load_state_dict(path) -> dict:
    """Return the checkpoint's tensors as numpy arrays keyed by state-dict name."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        elif _starts_as_zip(path):
            raise CheckpointError(f"{path}: truncated, not a complete zip archive (no central "
                                  "directory); fetch or copy it again")
        else:
            obj = _load_legacy(path)
    except CheckpointError:
        raise
    except EOFError:
        raise CheckpointError(f"{path}: truncated (ends inside the checkpoint); fetch or copy "
                              "it again") from None
    except (pickle.UnpicklingError, KeyError, ValueError, struct.error,
            zipfile.BadZipFile, IndexError, TypeError, AttributeError) as e:
        reason = " ".join(str(e).split())  # pickle's messages run over lines
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    return _unwrap(obj, path)
