"""`python -m resshift_jax.data.preview`: every argument or data problem is one line, status 2,
before any example is made (the grid itself: tests/test_data.py)."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def preview(*flags):
    return subprocess.run([sys.executable, "-m", "resshift_jax.data.preview", *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("flags, message", [
    (("--n", "0"), "--n=0: 0 is not an integer in the range [1, 64]"),
    (("--n", "-2"), "--n=-2: -2 is not an integer in the range [1, 64]"),
    (("--n", "65"), "--n=65: 65 is not an integer in the range [1, 64]"),
    (("--seed", "-1"), "--seed=-1: -1 is not a non-negative integer"),
    (("--out", "{T}/g.txt"), "{T}/g.txt: unknown image type; end it in .png, .jpg"),
    (("--out", "{T}/afile/x.png"), "{T}/afile: the --out file's folder is a file"),
    (("--out", "{T}"), "--out {T}: is a folder"),
    (("--config.data.train.sources", "({'type': 'folder', 'root': '{T}/nothere'},)"),
     "{T}/nothere: image folder does not exist"),
    (("--config.data.train.sources", "({'type': 'folder', 'root': '{T}/empty'},)"),
     "no training images in {T}/empty"),
])
def test_bad_arguments_are_one_line(tmp_path, flags, message):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "empty").mkdir()
    proc = preview("--config", "configs/demo.py", "--out", str(tmp_path / "grid.png"),
                   *(flag.replace("{T}", str(tmp_path)) for flag in flags))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message.replace("{T}", str(tmp_path)) in proc.stderr
    assert not (tmp_path / "grid.png").exists() and (tmp_path / "afile").read_text() == "mine"
