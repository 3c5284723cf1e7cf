"""The web demo behind `app.py`: requests run the `sample.py` job on one warm restorer.

A request copies the upload into a folder of its own and runs what `sample.py` runs on
one file: `sample_job.plan_job` (the same size, mask and megapixel checks and messages),
then `sample_job.run_job` (the same reader, restorer and PNG writer). Every way a request
can fail is a `RequestError` with one line for the page; the engine keeps serving.

One model per (model, dtype) stays warm in a small LRU cache, with one `ImageRestorer` per
tile size asked for. A request uses a shallow copy of it with its own seed and progress
callback: the copy shares the compiled programs, so only a shape not seen before compiles.
"""
import collections
import copy
import dataclasses
import io
import itertools
import pathlib
import shutil
import tempfile
import threading
import time
import traceback
from typing import Callable, Mapping, Optional

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from resshift_jax import builder, image_io, releases, sample_job
from resshift_jax.download import WeightsError
from resshift_jax.weights import CheckpointError

CUSTOM = "your model"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_USER_ERRORS = (sample_job.JobError, image_io.ImageReadError, CheckpointError, WeightsError)


class RequestError(ValueError):
    """A request that cannot be served; the message is one line for the page."""


@dataclasses.dataclass(frozen=True)
class Model:
    """An entry of the model menu: a released (task, version), or a config and weights."""

    task: str
    version: Optional[str]
    get_config: Callable
    unet_ckpt: Optional[str] = None
    vq_ckpt: Optional[str] = None

    @property
    def label(self) -> str:
        return self.task if self.version is None else f"{self.task} {self.version}"


def released_models() -> dict:
    """Every entry of `releases.RELEASES` (a new release there shows up in the menu)."""
    return {key: Model(*key, rel.get_config) for key, rel in releases.RELEASES.items()}


def custom_model(config, unet_ckpt=None, vq_ckpt=None, name: str = CUSTOM) -> dict:
    """The menu entry of a config given on the command line."""
    return {(name, None): Model(name, None, lambda: config, unet_ckpt, vq_ckpt)}


@dataclasses.dataclass
class Request:
    """One restoration: the uploaded file and the settings chosen in the page.

    `mask` is an uploaded mask file, `painted` an HxW bool array drawn in the browser
    (1 = fill); inpainting models need one of them, the uploaded one wins.
    """

    image: Optional[str]
    task: str
    version: Optional[str] = None
    seed: Optional[int] = None
    chop_size: Optional[int] = None
    bf16: bool = False
    mask: Optional[str] = None
    painted: Optional[np.ndarray] = None


@dataclasses.dataclass
class Result:
    before: pathlib.Path  # the input at the result's size (bicubic), for the slider
    after: pathlib.Path  # the restored PNG
    status: str
    seconds: float
    compilations: int


class _CompileCounter:
    """Counts XLA compilations (jax.monitoring events) while the context is open."""

    def __enter__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def _listen(self, event, duration, **kwargs):
        del duration, kwargs
        if event == _COMPILE_EVENT:
            self.count += 1

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)


def painted_mask(layers) -> Optional[np.ndarray]:
    """HxW bool of what was painted on the editor's layers (their alpha), None if nothing."""
    mask = None
    for layer in layers or ():
        rgb, alpha = image_io.read_image(layer)
        drawn = (alpha if alpha is not None else rgb.max(axis=-1)) > 0
        mask = drawn if mask is None else mask | drawn
    return mask if mask is not None and mask.any() else None


class Engine:
    """Serves `Request`s one at a time on warm restorers (at most `cache_size` kept)."""

    def __init__(self, models: Mapping, *, weights_dir="weights", workdir=None,
                 cache_size: int = 2, keep_requests: int = 8,
                 max_output_megapixels: float = sample_job.JobOptions.max_output_megapixels):
        if not models:
            raise ValueError("no models to serve")
        self.models = dict(models)
        self.weights_dir = weights_dir
        self.max_output_megapixels = max_output_megapixels
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="resshift-web-"))
        self._cache_size = max(1, cache_size)
        self._keep = max(1, keep_requests)
        self._configs = {}
        self._warm = collections.OrderedDict()
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def tasks(self) -> list:
        return list(dict.fromkeys(task for task, _ in self.models))

    def versions(self, task: str) -> list:
        return [v for t, v in self.models if t == task and v is not None]

    def model(self, task: str, version: Optional[str] = None) -> Model:
        """The model of `task` at `version` (the latest when None; ignored for a task with no
        versions, as the page sends its last choice); an unknown one is a RequestError."""
        versions = self.versions(task)
        if versions and version is not None and version not in versions:
            raise RequestError(f"{task} has no version {version!r}; choose one of "
                               + ", ".join(versions))
        key = (task, version if version in versions else (versions[-1] if versions else None))
        if key not in self.models:
            raise RequestError(f"unknown model {task!r} {version or ''}; choose one of "
                               + ", ".join(m.label for m in self.models.values()))
        return self.models[key]

    def config(self, model: Model):
        key = (model.task, model.version)
        if key not in self._configs:
            self._configs[key] = model.get_config()
        return self._configs[key]

    def needs_mask(self, task: str, version: Optional[str] = None) -> bool:
        return bool(self.config(self.model(task, version)).model.get("cond_mask", False))

    def describe(self, task: str, version: Optional[str] = None) -> str:
        """One line on the model: scale, steps, what it needs."""
        config = self.config(self.model(task, version))
        sf = int(config.sf)
        what = "fills the painted region" if config.model.get("cond_mask") else f"x{sf}"
        steps = builder.schedule_from_config(config).num_timesteps
        return (f"{what}, {steps} steps, tiles of "
                f"{builder.tile_geometry(config)[0]} input pixels by default")

    def restore(self, request: Request, progress: Optional[Callable] = None) -> Result:
        """Restore one upload; any failure is a `RequestError` with a one-line message.

        `progress(done, total, desc)` is told about loading and each batch of tiles.
        """
        with self._lock:
            folder = self._new_folder()
            try:
                return self._restore(request, folder, progress or (lambda *a: None))
            except RequestError as err:
                raise RequestError(_clean(str(err), folder)) from None
            except _USER_ERRORS as err:
                raise RequestError(_clean(_one_line(err), folder)) from None
            except Exception as err:  # a bug or the machine: logged, the page gets one line
                traceback.print_exc()
                line = _clean(_one_line(err), folder)[:300]
                raise RequestError(f"internal error ({type(err).__name__}: {line}); "
                                   "see the server log") from None

    def _restore(self, request: Request, folder: pathlib.Path, progress) -> Result:
        start = time.perf_counter()
        if not request.image:
            raise RequestError("upload an image first")
        model = self.model(request.task, request.version)
        config = self.config(model)
        sf, needs_mask = int(config.sf), bool(config.model.get("cond_mask", False))
        src = _copy_into(request.image, folder / "in")
        mask = None
        if needs_mask:
            mask = self._mask_file(request, src, folder / "mask")
        try:  # a tile size other than the config's takes the reference's stride rule
            chop_size, chop_stride = builder.tile_geometry(
                config, request.chop_size, None if request.chop_size is None else -1)
        except ValueError as err:
            raise RequestError(str(err)) from None
        opts = sample_job.JobOptions(
            in_path=str(src), out_path=str(folder / "out"), mask_path=mask and str(mask),
            chop_size=chop_size, chop_stride=chop_stride, blend=config.sample.blend,
            seed=int(config.sample.seed if request.seed is None else request.seed),
            max_output_megapixels=self.max_output_megapixels)
        jobs = sample_job.plan_job(opts, sf=sf, needs_mask=needs_mask)
        dtype = "bfloat16" if request.bf16 else config.sample.compute_dtype
        with _CompileCounter() as compiles:
            progress(0, 1, "loading the model")
            warm, load_seconds = self._warm_restorer(model, config, dtype, request.chop_size)
            tiles = [1]

            def on_tiles(done, total):
                tiles[0] = total
                progress(done, total, "restoring tiles")

            restorer = copy.copy(warm)  # shares the compiled programs
            restorer.seed, restorer.progress = opts.seed, on_tiles
            progress(0, 1, "restoring")
            restore_start = time.perf_counter()
            summary = sample_job.run_job(restorer, opts, jobs, out=io.StringIO())
            restore_seconds = time.perf_counter() - restore_start
        if summary.failures:
            raise RequestError(summary.failures[0])
        after = folder / "out" / (src.stem + ".png")
        rgb, _ = image_io.read_image(src)
        height, width = rgb.shape[:2]
        before = _before(rgb, sf, folder / "before.png")
        loaded = f"model loaded in {load_seconds:.1f} s, " if load_seconds else "model warm, "
        status = (f"{model.label} ({dtype}): {width}x{height} → {width * sf}x{height * sf} in "
                  f"{restore_seconds:.1f} s ({tiles[0]} tile{'s' * (tiles[0] > 1)}; {loaded}"
                  f"{time.perf_counter() - start:.1f} s in all); {compiles.count} XLA "
                  f"compilation{'s' * (compiles.count != 1)}")
        return Result(before, after, status, restore_seconds, compiles.count)

    def _mask_file(self, request: Request, src: pathlib.Path, folder: pathlib.Path):
        if request.mask:
            return _copy_into(request.mask, folder)
        if request.painted is None or not np.any(request.painted):
            image_io.read_image(src)  # an unreadable upload is told as such, not as no mask
            raise RequestError("this model fills a region: paint it over the image, "
                               "or upload a mask (white = fill)")
        mask = np.repeat(np.asarray(request.painted, np.float32)[..., None], 3, axis=-1)
        path = folder / "painted mask.png"
        image_io.write_png(path, mask)
        return path

    def _warm_restorer(self, model: Model, config, dtype: str, chop_size=None):
        """(the cached ImageRestorer of (model, dtype) at this tile size, seconds spent
        loading the model or 0); each tile size keeps its own compiled programs."""
        key = (model.task, model.version, dtype)
        start, load_seconds = time.perf_counter(), 0.0
        if key in self._warm:
            self._warm.move_to_end(key)
        else:
            while len(self._warm) >= self._cache_size:  # first: two big models need not fit
                self._warm.popitem(last=False)
            self._warm[key] = builder.build_restorer(
                config, dtype=getattr(jnp, dtype), unet_ckpt=model.unet_ckpt,
                vq_ckpt=model.vq_ckpt, weights_dir=self.weights_dir) + ({},)
            load_seconds = time.perf_counter() - start
        restorer, params, by_tiles = self._warm[key]
        if chop_size not in by_tiles:
            by_tiles[chop_size] = builder.image_restorer(
                config, restorer, params, chop_size=chop_size,
                chop_stride=None if chop_size is None else -1)
        return by_tiles[chop_size], load_seconds

    def _new_folder(self) -> pathlib.Path:
        """A fresh folder for this request; the oldest beyond `keep_requests` are removed."""
        folder = self.workdir / f"request-{next(self._ids):06d}"
        folder.mkdir(parents=True)
        old = sorted(self.workdir.glob("request-*"))[:-self._keep]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
        return folder


def _one_line(err: BaseException) -> str:
    """The one-line message of a user-side error."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _clean(message: str, folder: pathlib.Path) -> str:
    """The message with the request folder left out, so it names the user's files."""
    for sub in ("in", "mask", "out"):
        message = message.replace(f"{folder / sub}/", "")
    return message.replace(f"{folder}/", "")


def _copy_into(path, folder: pathlib.Path) -> pathlib.Path:
    """Copy an upload into `folder` under its own name (what messages then call it)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise RequestError(f"{path.name}: the upload is gone; upload it again")
    folder.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(shutil.copyfile(path, folder / path.name))


def _before(rgb: np.ndarray, sf: int, dst: pathlib.Path) -> pathlib.Path:
    """The input bicubically resized to the result's size, for a side-by-side view."""
    if sf != 1:
        height, width = rgb.shape[:2]
        rgb = cv2.resize(rgb, (width * sf, height * sf), interpolation=cv2.INTER_CUBIC)
    image_io.write_png(dst, rgb)
    return dst
