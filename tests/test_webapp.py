"""The web demo's request function on the tiny fixture models: a good image, a corrupt
upload, a mask of the wrong size; the engine keeps serving after each failure."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs import tiny_inpaint_test, tiny_test
from resshift_jax import webapp

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    models = {**webapp.custom_model(tiny_test.get_config(), name="tiny"),
              **webapp.custom_model(tiny_inpaint_test.get_config(), name="tiny inpaint")}
    return webapp.Engine(models, workdir=tmp_path_factory.mktemp("web"))


def _photo(path, size=(27, 20)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(path)
    return str(path)


def test_good_image_then_warm_request_compiles_nothing(engine, tmp_path):
    photo = _photo(tmp_path / "photo.png")
    first = engine.restore(webapp.Request(image=photo, task="tiny"))
    result = np.asarray(Image.open(first.after))
    assert result.shape == (80, 108, 3) and np.asarray(Image.open(first.before)).shape == (80, 108, 3)
    assert first.compilations >= 1 and "27x20 → 108x80" in first.status
    again = engine.restore(webapp.Request(image=_photo(tmp_path / "other.png", (30, 17)),
                                          task="tiny"))
    assert again.compilations == 0 and "model warm" in again.status  # same bucket: same program


def test_corrupt_upload_is_one_line_and_the_engine_keeps_serving(engine, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(webapp.RequestError) as err:
        engine.restore(webapp.Request(image=str(broken), task="tiny"))
    message = str(err.value)
    assert "broken.jpg" in message and "\n" not in message and "Traceback" not in message
    ok = engine.restore(webapp.Request(image=_photo(tmp_path / "fine.png"), task="tiny"))
    assert ok.after.exists()


def test_mask_of_the_wrong_size_is_refused_before_any_work(engine, tmp_path):
    photo = _photo(tmp_path / "face.png", (32, 32))
    mask = tmp_path / "mask.png"
    Image.new("L", (16, 16), 255).save(mask)
    with pytest.raises(webapp.RequestError, match="mask.png is 16x16 but the image is 32x32"):
        engine.restore(webapp.Request(image=photo, task="tiny inpaint", mask=str(mask)))
    with pytest.raises(webapp.RequestError, match="paint it over the image, or upload a mask"):
        engine.restore(webapp.Request(image=photo, task="tiny inpaint"))


def app(*flags, **kwargs):
    return subprocess.run([sys.executable, "app.py", *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, **kwargs)


@pytest.mark.parametrize("flags, message", [
    (("--port", "-1"), "--port=-1: -1 is not an integer in the range [0, 65535]"),
    (("--port", "70000"), "--port=70000: 70000 is not an integer in the range [0, 65535]"),
    (("--max_upload_mb", "-1"), "--max_upload_mb=-1: -1 is not a positive integer"),
    (("--cache_models", "0"), "--cache_models=0: 0 is not a positive integer"),
    (("--max_output_megapixels", "0"), "--max_output_megapixels must be positive"),
    (("--unet_ckpt", "v3"), "--unet_ckpt is for your own model: give its --config too"),
    (("--config", "configs/tiny_test.py", "--unet_ckpt", "{T}/nothere.pth"),
     "--unet_ckpt {T}/nothere.pth: no such file or folder (nor a released name: vqgan"),
    (("--compilation_cache", "{T}/afile"), "{T}/afile: the --compilation_cache folder is a file"),
])
def test_app_argument_problems_are_one_line_before_any_work(tmp_path, flags, message):
    (tmp_path / "afile").write_text("mine")
    proc = app(*(flag.replace("{T}", str(tmp_path)) for flag in flags))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message.replace("{T}", str(tmp_path)) in proc.stderr


def test_an_unknown_version_is_refused_not_replaced(tmp_path):
    """Released models by (task, version): a version the task lacks is an error, not its
    latest; a task without versions ignores the page's last choice."""
    engine = webapp.Engine(webapp.released_models(), workdir=tmp_path)
    assert engine.model("realsr", "v1").version == "v1"
    assert engine.model("realsr").version == engine.versions("realsr")[-1]
    with pytest.raises(webapp.RequestError, match="realsr has no version 'v9'; choose one of v1"):
        engine.model("realsr", "v9")
    assert engine.model("bicsr", "v3").task == "bicsr"
