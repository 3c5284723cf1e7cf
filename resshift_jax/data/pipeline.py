"""The training input pipeline: deterministic, host-sharded, resumable, fault-tolerant.

Global batch k holds the examples at global positions k*B .. k*B+B-1 of an endless
sequence of epochs, each a permutation of the source drawn from (seed, epoch). Host p of P
takes the contiguous slice k*B + p*B/P .. k*B + (p+1)*B/P - 1, the rows that
`jax.make_array_from_process_local_data` gives its devices on a mesh ordered by process
(`sharding.make_mesh`), and every example's randomness comes from (seed, position): the same
seed gives the same global batches, row for row, on any number of hosts and workers. An unreadable image (corrupt, truncated, a header over
`image_io.MAX_PIXELS`: whatever its source raises as `ImageReadError`) is replaced by the
next readable one (deterministically), counted, and logged once by name.
`get_state`/`set_state` hold the next batch's index and the skip counts by process: each
host fills only its own entry, so the hosts' lists sum to the run's (`train.loop` sums them
before logging and saving).
"""
import concurrent.futures
import collections
from typing import Callable, Optional

import cv2
import numpy as np
from absl import logging

from resshift_jax import image_io
from resshift_jax.data.degradations import degradation_for
from resshift_jax.data.lama_aug import lama_distortions
from resshift_jax.data.sources import DataError, make_source

MAX_RETRIES = 16


def crop_hq(img: np.ndarray, data_config, rng: np.random.Generator) -> np.ndarray:
    """Flip/rotate, pad (reflect) if small, random square crop (float [0,1]): with `rescale_gt`
    of max(short side, gt_size) resized to gt_size, else of `crop_pad_size` as it is (the
    pair is cropped to gt_size after the degradation, `paired_crop`)."""
    if data_config.get("use_hflip", True) and rng.uniform() < 0.5:
        img = img[:, ::-1]
    if data_config.get("use_rot", False):
        if rng.uniform() < 0.5:
            img = img[::-1]
        if rng.uniform() < 0.5:
            img = img.transpose(1, 0, 2)
    gt = int(data_config.gt_size)
    h, w = img.shape[:2]
    size = max(min(h, w), gt) if data_config.get("rescale_gt", False) else int(
        data_config.get("crop_pad_size") or gt)
    while h < size or w < size:
        img = cv2.copyMakeBorder(np.ascontiguousarray(img), 0, min(max(0, size - h), h), 0,
                                 min(max(0, size - w), w), cv2.BORDER_REFLECT_101)
        h, w = img.shape[:2]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    img = np.ascontiguousarray(img[top:top + size, left:left + size]).astype(np.float32) / 255.0
    if size != gt and data_config.get("rescale_gt", False):
        img = cv2.resize(img, (gt, gt), interpolation=cv2.INTER_AREA)
    return img


def paired_crop(example: dict, gt_size: int, sf: int, rng: np.random.Generator) -> dict:
    """An HQ/LQ pair larger than gt_size (a degraded `crop_pad_size` crop) cropped to gt_size
    at one random LQ position, as the reference's trainer does (`paired_random_crop`); a pair
    of gt_size as it is."""
    h, w = example["hq"].shape[:2]
    if h <= gt_size and w <= gt_size:
        return example
    size = gt_size // sf
    lq = example["lq"]
    top = int(rng.integers(0, lq.shape[0] - size + 1))
    left = int(rng.integers(0, lq.shape[1] - size + 1))
    return {"hq": np.ascontiguousarray(example["hq"][top * sf:(top + size) * sf,
                                                     left * sf:(left + size) * sf]),
            "lq": np.ascontiguousarray(lq[top:top + size, left:left + size])}


def prepare_hq(img: np.ndarray, data_config, rng: np.random.Generator) -> np.ndarray:
    """The HQ training image: `transform_type` "lama_distortions" (the reference's
    inpaint_imagenet augmentation) or the default flip/crop/resize (`crop_hq`)."""
    if transform_of(data_config) == "lama_distortions":
        return lama_distortions(img, rng, int(data_config.gt_size))
    return crop_hq(img, data_config, rng)


def transform_of(data_config) -> str:
    """`data_config.transform_type`, checked: "crop" (the default) or "lama_distortions"."""
    transform = data_config.get("transform_type", "crop")
    if transform not in ("crop", "lama_distortions"):
        raise DataError(f"data.train.transform_type: unknown {transform!r} (crop, lama_distortions)")
    return transform


class TrainIterator:
    def __init__(self, data_config, *, per_host_batch: int, seed: int, sf: int = 4,
                 process_index: int = 0, process_count: int = 1,
                 degradation: Optional[Callable] = None, source=None):
        self.config, self.seed = data_config, int(seed)
        transform_of(data_config)
        self.source = source if source is not None else make_source(data_config.sources)
        self.degrade = degradation or degradation_for(data_config, sf)
        self.sf = int(sf)
        self.per_host, self.p, self.processes = per_host_batch, process_index, process_count
        self.global_batch = per_host_batch * process_count
        self.batch_index, self.skipped = 0, 0
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, int(data_config.get("num_workers", 1))))
        self._queue = collections.deque()
        self._prefetch = max(1, int(data_config.get("prefetch", 2)))
        self._perms = {}
        self._logged = set()

    def _source_index(self, position: int, attempt: int) -> int:
        n = len(self.source)
        epoch = position // n
        perm = self._perms.get(epoch)  # one lookup: worker threads replace the dict
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            self._perms = {**{e: p for e, p in self._perms.items() if e >= epoch - 1}, epoch: perm}
        return int((perm[position % n] + attempt) % n)

    def example(self, position: int):
        """(example dict, skipped count) for a global position."""
        rng = np.random.default_rng([self.seed, position, 1])
        for attempt in range(MAX_RETRIES):
            index = self._source_index(position, attempt)
            try:
                img = self.source.read(index)
                break
            except image_io.ImageReadError as err:
                last = err
                if index not in self._logged:
                    self._logged.add(index)
                    logging.warning("training data: skipped %s", err)
        else:
            raise DataError(f"{MAX_RETRIES} unreadable images in a row near position "
                               f"{position}, the last: {last}")
        out = self.degrade(prepare_hq(img, self.config, rng), rng)
        out = paired_crop(out, int(self.config.gt_size), self.sf, rng)
        return {k: v * 2.0 - 1.0 for k, v in out.items()}, attempt  # mask: {-1, 1}

    def _batch(self, index: int):
        start = index * self.global_batch + self.p * self.per_host
        results = [self._pool.submit(self.example, pos)
                   for pos in range(start, start + self.per_host)]
        return index, results

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        while len(self._queue) < self._prefetch:
            nxt = self.batch_index + len(self._queue)
            self._queue.append(self._batch(nxt))
        index, futures = self._queue.popleft()
        examples = [f.result() for f in futures]
        self.skipped += sum(s for _, s in examples)
        self.batch_index = index + 1
        return {k: np.stack([e[k] for e, _ in examples]).astype(np.float32) for k in examples[0][0]}

    def get_state(self) -> dict:
        skipped = [0] * self.processes
        skipped[self.p] = self.skipped
        return {"batch_index": self.batch_index, "skipped": skipped, "seed": self.seed}

    def set_state(self, state: dict) -> None:
        """Continue at `state`: this host's entry of its "skipped" list; a list saved by
        another number of processes, or an older checkpoint's int, puts its total on host 0."""
        self._queue.clear()
        self.batch_index, skipped = int(state["batch_index"]), state.get("skipped", 0)
        if isinstance(skipped, list) and len(skipped) == self.processes:
            self.skipped = int(skipped[self.p])
        else:
            total = sum(map(int, skipped)) if isinstance(skipped, list) else int(skipped)
            self.skipped = total if self.p == 0 else 0


def make_train_iterator(data_config, *, per_host_batch: int, seed: int, sf: int = 4,
                        process_index: int = 0, process_count: int = 1,
                        degradation=None) -> TrainIterator:
    """The training batches of `data_config` at scale `sf` (the config's top-level `sf`)."""
    return TrainIterator(data_config, per_host_batch=per_host_batch, seed=seed, sf=sf,
                         process_index=process_index, process_count=process_count,
                         degradation=degradation)
