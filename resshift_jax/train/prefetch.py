"""Device prefetch: a background thread builds the next global batches while the step runs."""
import queue
import threading
from typing import Callable


class DevicePrefetcher:
    """Iterator over `to_device(next(data_iterator))`, built up to `depth` batches ahead.

    `get_state()` is the data iterator's position after the last batch *yielded* (the next
    batch the step will consume: what a checkpoint must hold), not after those still
    queued. An exception raised in the thread is raised by `next()`. `close()` stops the
    thread and puts the data iterator back at that position.
    """

    def __init__(self, data_iterator, to_device: Callable, depth: int = 2):
        if depth < 1:
            raise ValueError(f"device_prefetch={depth}: must be at least 1")
        self._data = data_iterator
        self._state = data_iterator.get_state()
        self._queue = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._fill, args=(to_device,), daemon=True,
                                        name="device_prefetch")
        self._thread.start()

    def _fill(self, to_device: Callable) -> None:
        try:
            while not self._closed.is_set():
                batch = to_device(next(self._data))
                self._put((batch, self._data.get_state(), None))
        except BaseException as e:  # noqa: B036 -- raised again in the main thread
            self._put((None, None, e))

    def _put(self, item) -> None:
        while not self._closed.is_set():
            try:
                return self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue

    def __iter__(self):
        return self

    def __next__(self):
        if self._error is None:
            batch, state, self._error = self._queue.get()
        if self._error is not None:
            raise self._error
        self._state = state
        return batch

    def get_state(self) -> dict:
        return self._state

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._data.set_state(self._state)
