"""The `tfds` training source: a tiny dataset prepared on disk (array_record), read by index."""
import ml_collections
import numpy as np
import pytest

from resshift_jax.data.pipeline import make_train_iterator
from resshift_jax.data.sources import make_source


def _images():
    """Six 12x10 images, the third grayscale (tfds stores it as a 1-channel PNG)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (12, 10, 3), np.uint8) for _ in range(5)]
    images.insert(2, rng.integers(0, 256, (12, 10, 1), np.uint8))
    return images


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    import tensorflow_datasets as tfds

    class TinyPhotos(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Read back by name from its files, as a prepared dataset without its code would be."""
        VERSION = tfds.core.Version("1.0.0")
        code_path = None  # no checksums file to look for next to this test

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, None)), "label": np.int64}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, img in enumerate(_images()):
                yield i, {"image": img, "label": i}

    root = tmp_path_factory.mktemp("tfds")
    TinyPhotos(data_dir=str(root), file_format="array_record").download_and_prepare()
    return str(root)


def _spec(data_dir):
    return {"type": "tfds", "name": "tiny_photos", "data_dir": data_dir}


def _rgb(img):
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def test_tfds_source_reads_every_image_as_rgb(data_dir):
    source = make_source([_spec(data_dir)])
    assert len(source) == 6
    read = [source.read(i) for i in range(6)]
    assert all(img.dtype == np.uint8 and img.shape == (12, 10, 3) for img in read)
    want = sorted(_rgb(img).tobytes() for img in _images())
    assert sorted(img.tobytes() for img in read) == want  # tfds stores them in its own order


def _config(data_dir, workers):
    return ml_collections.ConfigDict(dict(
        type="realesrgan", sources=(_spec(data_dir),), gt_size=12, crop_pad_size=12,
        use_hflip=False, num_workers=workers, prefetch=2))


def test_tfds_batches_cover_an_epoch_deterministically(data_dir):
    def identity(hq, rng):
        return {"hq": hq, "lq": hq}

    def batches(workers):
        it = make_train_iterator(_config(data_dir, workers), per_host_batch=2, seed=3,
                                 degradation=identity)
        return [next(it) for _ in range(3)]
    first, again = batches(1), batches(2)
    for a, b in zip(first, again):
        assert np.array_equal(a["hq"], b["hq"]) and np.array_equal(a["lq"], b["lq"])
    # the 12x12 crop of a 12x10 image pads it (reflect); its first 10 columns are the image
    seen = [np.round((hq[:, :10] + 1) * 127.5).astype(np.uint8)
            for batch in first for hq in batch["hq"]]
    assert sorted(img.tobytes() for img in seen) == sorted(_rgb(img).tobytes() for img in _images())
