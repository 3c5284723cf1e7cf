"""Fetching the released checkpoints (`releases.CHECKPOINTS`) on first use, verified."""
import hashlib
import http.client
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
    complete and (if a hash is known, from `sha256` or `SHA256`, else from a `FILE.sha256`
    the user put beside it) verified, so a failure leaves nothing behind; a user's
    `FILE.sha256` is never replaced.
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
    record = Path(f"{target}.sha256")
    expected, source = (sha256, "expected")
    if not sha256 and record.is_file():
        expected, source = _recorded_digest(record), str(record)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    except OSError as err:
        raise WeightsError(f"cannot write into --weights_dir {weights_dir} ({err.strerror or err})"
                           ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(url, out, target, progress)
        if expected and digest != expected.lower():
            raise WeightsError(
                f"{filename}: sha256 mismatch ({source} {expected}, got {digest}) for {url}; "
                f"the download was discarded"
            )
        if not expected and name in CHECKPOINTS:
            _check_torch_archive(Path(tmp), filename, url)
            record.write_text(f"{digest}  {filename}\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _recorded_digest(record: Path) -> str:
    """The sha256 in a `sha256sum`-format file (its first word), checked to be one."""
    words = record.read_text(errors="replace").split()
    digest = words[0].lower() if words else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise WeightsError(f"{record}: not a sha256 checksum file (expected '<64 hex digits>  "
                           "FILE'); fix or remove it")
    return digest


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
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        raise WeightsError(f"could not download {filename} ({err}); {advice}") from err
    if total is not None and received != total:
        raise WeightsError(f"download of {filename} incomplete ({received}/{total} bytes); {advice}")
    return digest.hexdigest()
