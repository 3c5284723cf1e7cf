"""Fetching the released checkpoints (`releases.CHECKPOINTS`) on first use, verified."""
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import MappingProxyType
from typing import Optional

from tqdm import tqdm

from resshift_jax.releases import CHECKPOINTS

# Known sha256 of each released file. Empty = unknown: the reference publishes no hashes and
# none could be recorded here (no network). Until filled in, a released file's download is
# checked as a complete PyTorch zip archive (every member's CRC) instead, and its digest is
# written beside it (`FILE.sha256`, `sha256sum -c` format) for the user to compare.
SHA256 = MappingProxyType({name: "" for name in CHECKPOINTS})

_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A checkpoint could not be provided; the message says which file to put where."""


def ensure_weights(
    name: str,
    weights_dir,
    *,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    progress: bool = True,
) -> Path:
    """Path of checkpoint `name` in `weights_dir`, downloading it if absent.

    `name` is a key of `CHECKPOINTS`, or a file name when `url` is given. An existing file
    is used as is. A download goes to a temporary file renamed into place only once
    complete and (if a hash is known, from `sha256` or `SHA256`) verified, so a failure
    leaves nothing behind.
    """
    if name in CHECKPOINTS:
        filename = CHECKPOINTS[name].filename
        url = url or CHECKPOINTS[name].url
        sha256 = sha256 or SHA256[name]
    elif url is not None and Path(name).name == name:
        filename = name
    else:
        raise WeightsError(
            f"unknown checkpoint {name!r}: expected one of {', '.join(CHECKPOINTS)}, "
            "or a plain file name together with a url"
        )
    target = Path(weights_dir) / filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(url, out, target, progress)
        if sha256 and digest != sha256.lower():
            raise WeightsError(
                f"{filename}: sha256 mismatch (expected {sha256}, got {digest}) for {url}; "
                f"the download was discarded"
            )
        if not sha256 and name in CHECKPOINTS:
            _check_torch_archive(Path(tmp), filename, url)
            Path(f"{target}.sha256").write_text(f"{digest}  {filename}\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _check_torch_archive(path: Path, filename: str, url: str) -> None:
    """A released .pth is a zip archive: refuse a truncated or corrupted download."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        bad = str(err)
    if bad is not None:
        raise WeightsError(f"{filename}: the download from {url} is not a complete PyTorch "
                           f"checkpoint ({bad}); it was discarded")


def _download(url: str, out, target: Path, progress: bool) -> str:
    """Stream `url` into `out`; returns the sha256 hex digest. Errors become WeightsError."""
    filename = target.name
    advice = f"download it by hand from {url} and put it at {target}"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=filename,
                      disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise WeightsError(f"could not download {filename} ({err}); {advice}") from err
    if total is not None and received != total:
        raise WeightsError(f"download of {filename} incomplete ({received}/{total} bytes); {advice}")
    return digest.hexdigest()
