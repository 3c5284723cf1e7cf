"""Fault injection: awkward and broken inputs never stop a job, and are named in one line each.

One `sample.py` run (tiny fixture model) over a folder of every kind of awkward file
(tests/awkward_files.py) and one rerun; the reading layer and the job's containment
(failed batches, failed writes, oversized single inputs) are checked in process.
"""
import dataclasses
import io
import json
import os
import pathlib
import subprocess
import sys
import tracemalloc
import warnings

import jax
import numpy as np
import pytest
from PIL import Image

from resshift_jax import image_io, sample_job
from tests import one_device
from tests.awkward_files import build, snapshot

ROOT = pathlib.Path(__file__).resolve().parents[1]
PARITY = ROOT / "tests" / "fixtures" / "parity"
JOB_ONLY_BAD = {"big_output.png"}  # readable, but over the job's --max_output_megapixels


def _sample(in_path, out_path, cache):
    cmd = [sys.executable, str(ROOT / "sample.py"), "--config", str(ROOT / "configs/tiny_test.py"),
           "--unet_ckpt", str(PARITY / "unet_sr_tiny.pth"), "--vq_ckpt", str(PARITY / "vq_f4_tiny.pth"),
           "--chop_size", "32", "--chop_stride", "24", "--max_output_megapixels", "1",
           "--compilation_cache", str(cache), "-i", str(in_path), "-o", str(out_path)]
    return subprocess.run(cmd, capture_output=True, text=True, errors="backslashreplace",
                          cwd=ROOT, timeout=900, env=one_device.ENV)


def _result(out: pathlib.Path, name: str) -> pathlib.Path:
    return out / pathlib.Path(name).with_suffix(".png")


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    good, bad = build(base / "in", base / "outside")
    return base, good, bad


@pytest.fixture(scope="module")
def job(awkward):
    base, good, bad = awkward
    before = snapshot(base / "in", base / "outside")
    proc = _sample(base / "in", base / "out", base / "xla_cache")
    return proc, before


def _failed_lines(proc):
    return [ln for ln in proc.stdout.splitlines() if ln.startswith("failed: ")]


def test_each_good_file_is_restored_at_its_size(awkward, job):
    base, good, bad = awkward
    proc, _ = job
    assert proc.returncode == 1, proc.stderr[-3000:]
    for name, (width, height, mode) in good.items():
        with Image.open(_result(base / "out", name)) as im:
            assert (im.size, im.mode) == ((4 * width, 4 * height), mode), name
    written = {p.relative_to(base / "out") for p in (base / "out").rglob("*") if p.is_file()}
    assert written == {_result(pathlib.Path(), name) for name in good}  # no temporaries left
    assert f"{len(good)} images restored, {len(bad)} failed, 0 skipped" in proc.stdout


def test_each_bad_file_is_named_with_one_line(awkward, job):
    base, good, bad = awkward
    proc, _ = job
    lines = _failed_lines(proc)
    assert len(lines) == len(bad)
    reasons = {}
    for name in bad:
        [line] = [ln for ln in lines if ln.startswith(f"failed: {base / 'in' / name}: ")]
        reasons[name] = line.split(f"{name}: ", 1)[1]
    expected = {"absurd_png.png": "10,000,000,000 pixels", "bomb_warning.png": "12000x10000",
                "absurd_tif.tif": "refused", "absurd_float.tif": "40000x40000",
                "big_output.png": "--max_output_megapixels", "dangling.png": "broken symbolic link",
                "empty.png": "empty file", "zero.png": "zero-sized", "text.jpg": "not a recognised",
                "page.tif": "not a recognised", "truncated_png.png": "truncated"}
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
    for name in bad:
        assert not _result(base / "out", name).exists()


def test_no_traceback_and_inputs_untouched(awkward, job):
    base, _, _ = awkward
    proc, before = job
    assert "Traceback" not in proc.stdout + proc.stderr
    assert snapshot(base / "in", base / "outside") == before


def test_rerun_skips_exactly_the_finished_results(awkward, job):
    """The result being written when a run was killed is missing (only its hidden
    temporary exists, writes being atomic): the rerun restores that one, skips the rest."""
    base, good, bad = awkward
    out = base / "out"
    kept = {p: p.read_bytes() for p in out.rglob("*.png") if p.name != "rgb_png.png"}
    data = (out / "rgb_png.png").read_bytes()
    (out / "rgb_png.png").unlink()
    (out / ".rgb_png.png.tmp4242").write_bytes(data[: len(data) // 2])
    proc = _sample(base / "in", out, base / "xla_cache")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"1 images restored, {len(bad)} failed, {len(good) - 1} skipped" in proc.stdout
    assert len(_failed_lines(proc)) == len(bad) and "Traceback" not in proc.stdout + proc.stderr
    with Image.open(out / "rgb_png.png") as im:
        assert im.size == (48, 40)
    assert all(p.read_bytes() == b for p, b in kept.items())


def test_reading_raises_only_one_line_image_read_errors(awkward):
    """Every bad file gives ImageReadError (no warning, no other exception), and the absurd
    headers are refused before any pixel buffer is allocated."""
    base, good, bad = awkward
    for name in sorted(bad - JOB_ONLY_BAD):
        tracemalloc.start()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(image_io.ImageReadError) as err:
                image_io.read_image(base / "in" / name)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert str(err.value).startswith(f"{base / 'in' / name}: ") and "\n" not in str(err.value)
        assert peak < 4 << 20, (name, peak)
    for name, (width, height, mode) in good.items():
        rgb, alpha = image_io.read_image(base / "in" / name)
        assert rgb.shape == (height, width, 3) and rgb.dtype == np.float32
        assert (alpha is not None) == (mode == "RGBA"), name


def test_any_other_failure_is_an_image_read_error(awkward, monkeypatch):
    base, _, _ = awkward
    with pytest.raises(image_io.ImageReadError, match="Is a directory"):
        image_io.read_image(base / "in" / "sub")

    def no_memory(*args):
        raise MemoryError("cannot allocate")
    monkeypatch.setattr(image_io.cv2, "imdecode", no_memory)
    with pytest.raises(image_io.ImageReadError, match="MemoryError: cannot allocate"):
        image_io.read_image(base / "in" / "rgb_png.png")


def test_probe_reads_sizes_from_headers(awkward):
    base, _, _ = awkward
    assert image_io.probe(base / "in" / "odd.png") == (17, 33, "RGB")
    assert image_io.probe(base / "in" / "float_rgb.tif")[:2] == (9, 11)  # Pillow cannot open it
    with pytest.raises(image_io.ImageTooLarge) as err:
        image_io.probe(base / "in" / "absurd_png.png")
    assert err.value.pixels == 100_000 ** 2
    with pytest.raises(image_io.ImageTooLarge, match=r"600x500 = 300,000 pixels, over the limit of 100 \("):
        image_io.probe(base / "in" / "big_output.png", max_pixels=100)


def test_opencv_pixel_limit_is_a_refusal(awkward):
    base, _, _ = awkward
    with pytest.raises(image_io.ImageReadError, match="OpenCV's pixel limit"):
        image_io.read_image(base / "in" / "absurd_float.tif", max_pixels=10 ** 10)


class FakeRestorer:
    """x4 nearest-neighbour 'restoration'; a batch holding a white image runs out of memory."""
    sf = 4
    compilations, compile_seconds = 0, 0.0

    def __init__(self):
        self.batches = []

    def group_of(self, height, width):
        return (height, width)

    def prepare(self, sizes, has_mask=False):
        del sizes, has_mask
        return 0

    def restore_batch(self, images, masks=None, names=None):
        assert names is not None and len(names) == len(images)
        self.batches.append(len(images))
        if any(image.min() == 1.0 for image in images):
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to "
                                             "allocate 1234 bytes.\nBufferAssignment details...")
        return [np.repeat(np.repeat(image, 4, axis=0), 4, axis=1) for image in images]


def _folder(tmp_path, n, white=()):
    for i in range(n):
        value = 255 if i in white else 40 * i % 250
        Image.new("RGB", (6, 5), (value,) * 3).save(tmp_path / "in" / f"{i}.png")


def test_failed_batch_is_retried_image_by_image(tmp_path):
    (tmp_path / "in").mkdir()
    _folder(tmp_path, 5, white={1})
    opts = sample_job.JobOptions(str(tmp_path / "in"), str(tmp_path / "out"), bs=3, chop_size=32)
    jobs = sample_job.plan_job(opts, sf=4, needs_mask=False)
    restorer = FakeRestorer()
    summary = sample_job.run_job(restorer, opts, jobs, out=io.StringIO())
    assert restorer.batches == [3, 1, 1, 1, 2]  # the failed batch, its images alone, the rest
    assert summary.done == 4 and len(summary.failures) == 1
    assert summary.failures[0].startswith(f"{tmp_path / 'in' / '1.png'}: out of memory")
    assert "\n" not in summary.failures[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png", "3.png", "4.png"]


def test_a_name_clash_or_a_bad_mask_fails_that_image_only(tmp_path):
    """In a folder, `2.jpg` beside `2.png`, a missing mask and a mask of another size are
    each that image's failure (every run, result or not), never the whole job's; for one
    image given alone they stay argument errors."""
    (tmp_path / "in").mkdir()
    _folder(tmp_path, 4)
    Image.new("RGB", (6, 5)).save(tmp_path / "in" / "2.jpg")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, size in ((0, (6, 5)), (1, (6, 5)), (2, (6, 5)), (3, (7, 5))):
        Image.new("L", size, 255).save(masks / f"{i}.png")
    (masks / "1.png").unlink()
    Image.new("L", (6, 5), 255).save(masks / "2.jpg")  # masks are named as their image
    opts = sample_job.JobOptions(str(tmp_path / "in"), str(tmp_path / "out"), chop_size=32,
                                 mask_path=str(masks))
    for run in range(2):
        jobs = sample_job.plan_job(opts, sf=4, needs_mask=True)
        out = io.StringIO()
        summary = sample_job.run_job(FakeRestorer(), opts, jobs, out=out)
        assert (summary.done, summary.skipped) == ((2, 0) if run == 0 else (0, 2))
        failed = sorted(summary.failures)
        assert [line.split(":")[0] for line in failed] == [
            str(tmp_path / "in" / name) for name in ("1.png", "2.png", "3.png")]
        assert "its mask" in failed[0] and "does not exist" in failed[0]
        assert "2.jpg's; rename one of them" in failed[1]
        assert "7x5" not in failed[2] and "5x7 but the image is 5x6" in failed[2]
        assert out.getvalue().count("failed: ") == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png"]
    alone = dataclasses.replace(opts, in_path=str(tmp_path / "in" / "3.png"))
    with pytest.raises(sample_job.JobError, match="5x7 but the image is 5x6"):
        sample_job.plan_job(alone, sf=4, needs_mask=True)


def test_failed_write_leaves_no_result_and_the_job_goes_on(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    _folder(tmp_path, 3)
    opts = sample_job.JobOptions(str(tmp_path / "in"), str(tmp_path / "out"), chop_size=32)
    jobs = sample_job.plan_job(opts, sf=4, needs_mask=False)
    replace = os.replace

    def disk_full_on_1(src, dst):
        if pathlib.Path(dst).name == "1.png":
            raise OSError(28, "No space left on device")
        replace(src, dst)
    monkeypatch.setattr(image_io.os, "replace", disk_full_on_1)
    summary = sample_job.run_job(FakeRestorer(), opts, jobs, out=io.StringIO())
    assert summary.done == 2 and summary.failures == [
        f"{tmp_path / 'in' / '1.png'}: OSError: [Errno 28] No space left on device"]
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "2.png"]  # no temporary left


def test_single_oversized_input_stops_before_work(awkward, tmp_path):
    base, _, _ = awkward
    for name, words in [("absurd_png.png", "10,000,000,000 pixels"), ("big_output.png", "--max_output_megapixels")]:
        opts = sample_job.JobOptions(str(base / "in" / name), str(tmp_path / "o"),
                                     max_output_megapixels=1)
        with pytest.raises(sample_job.JobError, match=words):
            sample_job.plan_job(opts, sf=4, needs_mask=False)
    opts = sample_job.JobOptions(str(base / "in" / "text.jpg"), str(tmp_path / "o"))
    assert len(sample_job.plan_job(opts, sf=4, needs_mask=False)) == 1  # reported when read


def test_results_under_the_input_folder_are_not_inputs(tmp_path):
    (tmp_path / "in").mkdir()
    _folder(tmp_path, 2)
    opts = sample_job.JobOptions(str(tmp_path / "in"), str(tmp_path / "in" / "out"), chop_size=32)
    sample_job.run_job(FakeRestorer(), opts, sample_job.plan_job(opts, sf=4, needs_mask=False),
                       out=io.StringIO())
    again = sample_job.plan_job(opts, sf=4, needs_mask=False)
    assert [j.src.name for j in again] == ["0.png", "1.png"]
    assert all(j.dst.exists() for j in again)


def test_evaluation_reports_each_bad_file_and_scores_the_rest(awkward, tmp_path, capsys):
    from resshift_jax import evaluate
    base, good, bad = awkward
    out_json = tmp_path / "scores.json"
    rc = evaluate.main(["--pred", str(base / "in"), "--gt", str(base / "in"), "--metrics", "psnr",
                        "--json", str(out_json), "--no_progress"])
    captured = capsys.readouterr()
    assert rc == 1 and "Traceback" not in captured.out + captured.err
    for name in bad - JOB_ONLY_BAD:
        assert f"{base / 'in' / name}: " in captured.err, name
    report = json.loads(out_json.read_text())
    assert len(report["images"]) == len(good) + len(JOB_ONLY_BAD)
    assert len(report["problems"]) == len(bad - JOB_ONLY_BAD)
