"""Dynamic batching: concurrent requests to one model are encoded together by one worker thread.

    batcher = DynamicBatcher(model.encode, name="minilm-l6", max_batch_tokens=8192)
    future = batcher.submit(texts, tokens)        # concurrent.futures.Future -> (n, dim) array
    vectors = future.result()

`fn` maps all texts of a batch to one array (sliced back per request) or to a tuple of
sequences, each sliced per request (e.g. vectors and token counts).

Requests wait in a bounded FIFO queue (`max_queue_items` texts; `submit` raises `QueueFullError`
with a `retry_after` estimate when a request does not fit). The worker takes the oldest request
and then every queued request that still fits the batch budget (`max_batch_tokens` tokens and
`max_batch_items` texts; a single larger request is encoded alone), so that a burst of small
requests becomes one large, length-sorted encode. No artificial delay: while one batch encodes,
the next accumulates (by default no artificial delay). Cancelled futures (timed-out requests) are skipped before encoding.
`max_wait_ms` > 0 lets a batch that is not full wait that long for more requests (a few ms merge
the requests of clients that are just receiving their previous answer; 0: never wait).
`workers` > 1 runs that many encoding threads on the same queue (each takes its own batch): with
one torch thread each, this uses several cores for small batches, where one multi-threaded
forward pass scales poorly.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from repspace.errors import RepspaceError


class QueueFullError(RepspaceError):
    """The model's queue is full; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Request:
    texts: list[str]
    tokens: int
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    def __init__(self, fn: Callable[[list[str]], np.ndarray], name: str = "model", max_batch_tokens: int = 8192,
                 max_batch_items: int = 256, max_queue_items: int = 4096,
                 on_batch: Callable[[int, int, float], None] | None = None,
                 thread_init: Callable[[], None] | None = None, workers: int = 1, max_wait_ms: float = 0.0) -> None:
        if min(max_batch_tokens, max_batch_items, max_queue_items, workers) < 1:
            raise ValueError("batch and queue limits must be positive")
        self.fn = fn
        self.name = name
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_batch_items = int(max_batch_items)
        self.max_queue_items = int(max_queue_items)
        self.on_batch = on_batch
        self.max_wait_s = max(0.0, float(max_wait_ms)) / 1000.0
        self.thread_init = thread_init  # runs first in the worker thread (e.g. torch.set_num_threads: per thread)
        self._queue: deque[_Request] = deque()
        self._queued_items = 0
        self._cond = threading.Condition()
        self._closed = False
        self._rate = 0.0  # texts per second, exponentially averaged over batches
        self._threads = [threading.Thread(target=self._run, name=f"repspace-encode-{name}-{k}", daemon=True)
                         for k in range(int(workers))]
        for t in self._threads:
            t.start()

    @property
    def queue_depth(self) -> int:
        """Texts waiting (not yet taken into a batch)."""
        return self._queued_items

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (1 when unknown)."""
        if self._rate <= 0:
            return 1
        return int(min(60, max(1, math.ceil(self._queued_items / self._rate))))

    def submit(self, texts: Sequence[str], tokens: int | Sequence[int] | None = None) -> Future:
        texts = list(texts)
        n_tokens = int(sum(tokens)) if isinstance(tokens, (list, tuple)) else int(tokens or sum(map(len, texts)))
        req = _Request(texts, n_tokens)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"batcher for {self.name!r} is closed")
            if self._queued_items + len(texts) > self.max_queue_items:
                raise QueueFullError(
                    f"model {self.name!r} is busy: {self._queued_items} inputs queued, the queue holds "
                    f"{self.max_queue_items} (max_queue_items); retry later", self.retry_after())
            self._queue.append(req)
            self._queued_items += len(texts)
            self._cond.notify()
        return req.future

    def close(self, timeout: float | None = 5.0) -> None:
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._queued_items = 0
            self._cond.notify_all()
        for r in pending:
            r.future.cancel()
        for t in self._threads:
            t.join(timeout)

    # ---------------------------------------------------------------- worker
    def _take(self) -> list[_Request] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            batch: list[_Request] = []
            items = tokens = 0
            deadline = None
            while True:
                full = False
                while self._queue:
                    r = self._queue[0]
                    if batch and (items + len(r.texts) > self.max_batch_items or tokens + r.tokens > self.max_batch_tokens):
                        full = True
                        break
                    self._queue.popleft()
                    self._queued_items -= len(r.texts)
                    if not r.future.set_running_or_notify_cancel():
                        continue  # cancelled while queued (client gone or timed out)
                    batch.append(r)
                    items += len(r.texts)
                    tokens += r.tokens
                if full or not batch or self.max_wait_s <= 0 or self._closed:
                    return batch
                # linger up to max_wait_s for requests that are on their way (merges client cohorts)
                deadline = deadline or time.monotonic() + self.max_wait_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch
                self._cond.wait(remaining)

    def _run(self) -> None:
        if self.thread_init is not None:
            self.thread_init()
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            texts = [t for r in batch for t in r.texts]
            t0 = time.perf_counter()
            try:
                out = self.fn(texts)
            except BaseException as e:  # delivered to every waiting request
                for r in batch:
                    r.future.set_exception(e)
                continue
            dt = time.perf_counter() - t0
            if dt > 0:
                rate = len(texts) / dt
                self._rate = rate if self._rate == 0 else 0.8 * self._rate + 0.2 * rate
            if self.on_batch is not None:
                try:
                    self.on_batch(len(texts), sum(r.tokens for r in batch), dt)
                except Exception:
                    pass
            start = 0
            for r in batch:
                end = start + len(r.texts)
                r.future.set_result(tuple(o[start:end] for o in out) if isinstance(out, tuple) else out[start:end])
                start = end
