"""``QueryBatcher``: the query encodings of concurrent requests, run as one encoder call.

One background thread owns the encoder. A request thread calls :meth:`QueryBatcher.encode` and blocks until its
vector is ready. The thread takes the oldest waiting text together with every other text already waiting, up to
``max_batch``. When the service is under load (more than one text is waiting, or the previous call held more than
one), it also waits at most ``max_wait_ms`` for more texts to arrive. It then calls ``encoder.encode_queries`` once
and hands each caller its own row. A lone request on an idle service starts at once and waits for nothing.

Under load, the texts that arrive while one call runs form the next batch, so the batches grow with the load on
their own. Each caller gets the vector its text has alone (:class:`~es_biomed.encode.base.Encoder` pads within a
batch and masks the padding; on the MiniLM ONNX query path the rows are equal to the bit).

Whether batching pays depends on the encoder. It does where one call on a batch costs much less than the same texts
one by one (a GPU, large matrix units). It does not on a CPU where the encoder is compute-bound: on the 2-core AVX2
machine of ``benchmarks/RESULTS.md`` (issue 23) a query costs the same CPU time alone or in a batch, the padding of
a batch adds to it, and ``es-biomed serve`` with batching answered fewer searches a second, not more. So the service
leaves it off unless ``--batch-wait-ms`` asks for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

import numpy as np

from es_biomed.errors import EsBiomedError

__all__ = ["QueryBatcher", "BatcherClosedError", "DEFAULT_MAX_WAIT_MS", "DEFAULT_MAX_BATCH"]

logger = logging.getLogger(__name__)

#: How long a batch waits for more texts under load, where batching is on. 1, 2 and 5 ms measured alike with
#: ``benchmarks/bench_serve.py`` (``benchmarks/RESULTS.md``, issue 23): under load the batch fills while the
#: previous call runs.
DEFAULT_MAX_WAIT_MS = 2.0
DEFAULT_MAX_BATCH = 32


class QueryEncoder(Protocol):
    """What the batcher needs of an encoder (any :class:`~es_biomed.encode.base.Encoder` is one)."""

    def encode_queries(self, queries: Sequence[str], batch_size: int = ..., show_progress: bool = ...) -> Any: ...


class BatcherClosedError(EsBiomedError, RuntimeError):
    """The batcher was closed (the service is shutting down) before it encoded the query."""


class QueryBatcher:
    """Encode the queries of concurrent callers in shared batches, in one background thread.

    Args:
        encoder: The query encoder (``encode_queries(texts, batch_size=...)`` -> ``[n, dims]`` rows).
        max_wait_ms: Under load, how long a batch waits for more texts once it has its first. Must be > 0 (a
            service without batching does not make a batcher).
        max_batch: The most texts in one encoder call.
        name: The thread's name.

    Raises:
        ValueError: ``max_wait_ms`` is not positive or ``max_batch`` is below 1.

    Example:
        >>> with QueryBatcher(encoder) as batcher:                                # doctest: +SKIP
        ...     batcher.encode("aspirin after stroke").shape                    # from any number of threads
        (384,)
    """

    def __init__(
        self,
        encoder: QueryEncoder,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "es-biomed-query-batcher",
    ) -> None:
        if not max_wait_ms > 0:
            raise ValueError(f"max_wait_ms: must be > 0 (got {max_wait_ms!r}); without batching, make no batcher")
        if max_batch < 1:
            raise ValueError(f"max_batch: must be at least 1 (got {max_batch!r})")
        self.encoder = encoder
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_batch = int(max_batch)
        self._queue: deque[tuple[str, Future[np.ndarray]]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._last_batch = 0
        #: Encoder calls made and texts encoded (``texts / calls`` is the mean batch size).
        self.calls = 0
        self.texts = 0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ callers
    def encode(self, text: str) -> np.ndarray:
        """The query vector of ``text`` (blocking: call it from a worker thread, not from the event loop).

        Raises:
            BatcherClosedError: the batcher is closed, or was closed while ``text`` waited.
            Exception: whatever the encoder raised for the batch that held ``text``.
        """
        future: Future[np.ndarray] = Future()
        with self._cond:
            if self._closed:
                raise BatcherClosedError(_CLOSED)
            self._queue.append((text, future))
            self._cond.notify()
        return future.result()

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the thread: texts still waiting fail with :class:`BatcherClosedError`; a call already running
        finishes and delivers its vectors. Later :meth:`encode` calls fail at once. Idempotent."""
        with self._cond:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for _, future in waiting:
            future.set_exception(BatcherClosedError(_CLOSED))
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Texts waiting for the next encoder call."""
        with self._cond:
            return len(self._queue)

    def __enter__(self) -> QueryBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the thread
    def _next_batch(self) -> list[tuple[str, Future[np.ndarray]]]:
        """The texts of the next call (empty once closed)."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return []
            batch = [self._queue.popleft()]
            # a lone text on an idle service goes at once; under load, wait a little for the requests in flight
            if self._queue or self._last_batch > 1:
                deadline = time.monotonic() + self.max_wait_s
                while len(batch) < self.max_batch and not self._closed:
                    if self._queue:
                        batch.append(self._queue.popleft())
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            if self._closed:  # closed while the batch gathered: its texts fail as the waiting ones did
                for _, future in batch:
                    future.set_exception(BatcherClosedError(_CLOSED))
                return []
            self._last_batch = len(batch)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                vecs = np.asarray(self.encoder.encode_queries([t for t, _ in batch], batch_size=len(batch)))
                if vecs.shape[0] != len(batch):
                    raise RuntimeError(f"the encoder returned {vecs.shape[0]} vectors for {len(batch)} queries")
            except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets the encoder's error
                for _, future in batch:
                    future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                logger.debug("query batcher: the encoder failed for %d queries: %r", len(batch), exc)
                continue
            self.calls += 1
            self.texts += len(batch)
            for i, (_, future) in enumerate(batch):
                future.set_result(vecs[i].copy())


_CLOSED = "the query batcher is closed: the search service is shutting down; send the request again once it is back"
