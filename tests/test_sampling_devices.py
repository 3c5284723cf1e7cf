"""Sampling over every local device, and few compilations for a folder of many sizes.

conftest gives this process 8 simulated CPU devices.
"""
import io
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from configs import realsr_v3, tiny_test
from resshift_jax import builder, image_io, inference, sample_job

REALSET65 = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "realset65"


def _folder(folder: pathlib.Path):
    """Three sizes: two within the chop (bucket 32) and one cut into 2 x 2 tiles."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (20, 27), "b.png": (40, 36), "c.png": (17, 9)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(folder / name)


def test_eight_devices_restore_a_folder_as_one_device_with_planned_programs(tmp_path):
    """sample_job over 8 devices (batches of 8 images / 8 tiles): one program (the tiny
    model's chop is its only bucket), as `program_shapes` predicts from the headers and
    `prepare` compiles before any image runs, and each image equal to it restored alone on
    one device (noise keyed by its name, not its slot)."""
    config = tiny_test.get_config()  # chop 32, stride 24, padding_offset 32
    restorer, params = builder.build_restorer(config)
    _folder(tmp_path / "in")
    eight = builder.image_restorer(config, restorer, params, bs=8, chop_bs=8, pad="bucket")
    assert eight.num_devices == 8 and eight.buckets == (32,)
    opts = sample_job.JobOptions(str(tmp_path / "in"), str(tmp_path / "out"), bs=8,
                                 chop_size=32, chop_stride=24, chop_bs=8)
    jobs = sample_job.plan_job(opts, sf=4, needs_mask=False)
    sizes = [image_io.probe(j.src)[:2] for j in jobs]
    planned = set().union(*(eight.program_shapes(*size) for size in sizes))
    assert planned == {(8, 32, 32)}
    assert eight.prepare(sizes) == 0 and eight.compilations == 1
    summary = sample_job.run_job(eight, opts, jobs, out=io.StringIO())
    assert summary.done == 3 and summary.compilations == 0  # the programs prepare compiled ran
    assert "0 compilations (0.0 s)" in summary.line()

    one = builder.image_restorer(config, restorer, params, pad="bucket", devices=jax.devices()[:1])
    for job in jobs:
        image, _ = image_io.read_image(job.src)
        alone = one.restore_batch([image], names=[job.src.name])[0]
        got = np.asarray(Image.open(job.dst), np.float32) / 255
        assert got.shape == alone.shape
        assert np.abs(got - alone).max() <= 0.5 / 255 + 1e-5, job.src.name  # PNG rounding only
    assert one.compilations == 1


def test_prepare_compiles_a_folders_programs_in_parallel_and_auto_padding():
    """Batches of 2 images and tiles one at a time: two programs for a folder with one image
    within the chop and one larger; `prepare` compiles both at once from their sizes, and
    running the images compiles nothing more. "auto" pads as the reference on CPUs, with
    buckets on accelerators."""
    config = tiny_test.get_config()
    restorer, params = builder.build_restorer(config)
    one = builder.image_restorer(config, restorer, params, bs=2, chop_bs=1,
                                 devices=jax.devices()[:1])
    assert one.pad == "reference"  # auto, on CPU
    images = [np.full((20, 27, 3), 0.5, np.float32), np.full((40, 20, 3), 0.25, np.float32)]
    assert one.prepare([im.shape[:2] for im in images], workers=2) == 0
    assert one.compilations == 2
    for image in images:
        assert one.restore_batch([image])[0].shape == (image.shape[0] * 4, image.shape[1] * 4, 3)
    assert one.compilations == 2
    assert inference.resolve_pad("auto", "gpu") == inference.resolve_pad("auto", "tpu") == "bucket"
    assert inference.resolve_pad("bucket", "cpu") == "bucket"
    with pytest.raises(ValueError, match="pad must be one of"):
        inference.resolve_pad("square", "gpu")


@pytest.mark.parametrize("devices", [1, 8])
def test_realset65_needs_at_most_six_programs(devices):
    """All 65 RealSet65 images at the v3 defaults (chop 512, batches one per device), from
    their headers: the reference's padding would need one program per padded size."""
    config = realsr_v3.get_config()
    files = image_io.list_images(REALSET65)
    assert len(files) == 65
    sizes = [image_io.probe(f)[:2] for f in files]

    def programs(pad):
        image_restorer = builder.image_restorer(
            config, builder.restorer_from_config(config), {}, bs=devices, chop_bs=devices, pad=pad)
        return set().union(*(image_restorer.program_shapes(h, w) for h, w in sizes))

    bucketed = programs("bucket")
    assert len(bucketed) <= 6, bucketed
    assert {b for b, _, _ in bucketed} == {devices}
    assert len(programs("reference")) == 19  # one per padded size or tile shape
