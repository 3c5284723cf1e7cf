"""sample.py end to end on the parity fixtures' tiny weights: good and bad files, reruns."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests import one_device

ROOT = pathlib.Path(__file__).resolve().parents[1]
PARITY = ROOT / "tests" / "fixtures" / "parity"


def _sample(*args, cwd=ROOT):
    cmd = [sys.executable, str(ROOT / "sample.py"), "--config", str(ROOT / "configs/tiny_test.py"),
           "--unet_ckpt", str(PARITY / "unet_sr_tiny.pth"), "--vq_ckpt", str(PARITY / "vq_f4_tiny.pth"),
           "--chop_size", "32", "--chop_stride", "24", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=one_device.ENV)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(root / "small.png")
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), np.uint8)).save(root / "sub_tiles.jpg")
    (root / "nested").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 20), np.uint8)).save(root / "nested" / "gray.png")
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    good = (root / "small.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    return root


def test_good_images_restored_bad_ones_reported(folder, tmp_path):
    out = tmp_path / "out"
    proc = _sample("-i", folder, "-o", out)
    assert proc.returncode == 1, proc.stderr[-2000:]
    for name, size in [("small.png", (80, 80)), ("sub_tiles.png", (192, 160)),
                       ("nested/gray.png", (80, 80))]:
        with Image.open(out / name) as im:
            assert im.size == size and im.mode == "RGB"
    for bad in ("empty.png", "text.png", "truncated.png"):
        assert not (out / bad).exists()
        assert bad in proc.stdout + proc.stderr
    assert "3 images restored, 3 failed" in proc.stdout

    before = (out / "small.png").read_bytes()
    again = _sample("-i", folder / "small.png", "-o", out)
    assert again.returncode == 0 and "1 skipped" in again.stdout
    assert (out / "small.png").read_bytes() == before


ARGUMENT_PROBLEMS = {  # arguments after -i/-o: {case: (arguments, what the one line says)}
    "output is the input": (["-o", "{folder}"], "is the input folder"),
    "output holds the input": (["-o", "{folder}/.."], "holds the input folder"),
    "one input, output its folder": (["-i", "{folder}/small.png", "-o", "{folder}"],
                                     "is the input folder"),
    "output is a file": (["-o", "{folder}/small.png"], "the output folder is a file"),
    "output under a file": (["-o", "{folder}/small.png/out"], "cannot write into the output folder"),
    "no images": (["-i", "{empty}"], "no images found"),
    "tile of 0": (["--chop_size", "0"], "chop_size 0: give a positive tile size"),
    "tiles with gaps": (["--chop_stride", "40"], "chop_stride 40: give 1..32"),
    "no reference stride": (["--chop_stride", "-1"], "give --chop_stride too"),
    "masks, no inpainting": (["--mask_path", "{folder}"], "this model does not inpaint"),
    "unknown task": (["--task", "sr"], "flag --task=sr: value should be one of"),
    "unknown flag": (["--chop", "8"], "Unknown command line flag 'chop'"),
    "batch of 0": (["--bs", "0"], "flag --bs=0"),
    "seed too large": (["--seed", str(2**64)], "flag --seed="),
    "limit nan": (["--max_output_megapixels", "nan"], "must be positive"),
}


@pytest.mark.parametrize("case", sorted(ARGUMENT_PROBLEMS))
def test_argument_problem_is_one_line_and_status_2_before_work(case, folder, tmp_path):
    args, says = ARGUMENT_PROBLEMS[case]
    (tmp_path / "empty").mkdir()
    args = [a.format(folder=folder, empty=tmp_path / "empty") for a in args]
    given = set(args) & {"-i", "-o"}
    proc = _sample(*(["-i", folder] if "-i" not in given else []),
                   *(["-o", tmp_path / "out"] if "-o" not in given else []), *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert says in proc.stderr
    assert not (tmp_path / "out").exists() or case.startswith("output")
    assert (folder / "small.png").is_file() and not (folder / "small.png.png").exists()


def test_missing_weights_file_is_one_clear_line(folder, tmp_path):
    cmd = [sys.executable, str(ROOT / "sample.py"), "--config", str(ROOT / "configs/tiny_test.py"),
           "--unet_ckpt", str(tmp_path / "nope.pth"), "-i", str(folder), "-o", str(tmp_path / "o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=one_device.ENV)
    assert proc.returncode == 2
    assert "nope.pth" in proc.stderr and "Traceback" not in proc.stderr
