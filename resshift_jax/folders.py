"""Folders a run writes into, checked before any work: made if missing, and written to once."""
import pathlib
import tempfile


class FolderError(ValueError):
    """A folder that cannot take the results; the message names it and says why."""


def check_writable(path, what: str) -> None:
    """Make `path` (a folder, `what` in messages) if missing and write and remove a hidden
    file in it; `FolderError` if it is a file or cannot be written."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise FolderError(f"{path}: the {what} is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check"):
            pass
    except OSError as e:
        raise FolderError(f"{path}: cannot write into the {what} ({e.strerror or e})") from None
