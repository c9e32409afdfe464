"""Frames decoded once, read twice: a sampler's scan hands its decoded chunks to an expert on another thread.

The coverage sampler decodes a frame of every second of the video for its scan; the OCR expert reads a frame
of every second (or two) too. Instead of decoding the video a second time, the scan :meth:`~FrameFeed.put`\\ s
each decoded chunk of :class:`~mmlong.types.Frames` into a bounded queue and the expert iterates over the feed
on its own thread, so memory holds a few chunks however long the video is.

The producer always :meth:`~FrameFeed.close`\\ s the feed (with the error if it failed), so the reader never
waits forever; a feed closed before any frame arrived is *unused* and the reader decodes on its own. A reader
that stops early (or never starts: its output came from a cache) :meth:`~FrameFeed.abandon`\\ s it, after which
``put`` drops chunks instead of blocking the producer.

>>> feed = FrameFeed(max_chunks=3)
>>> feed.put("a"); feed.put("b"); feed.close()
>>> feed.used, list(feed)
(True, ['a', 'b'])
>>> empty = FrameFeed(); empty.close(); empty.used
False
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

_END = object()


class FeedAborted(RuntimeError):
    """The producer failed before the feed was complete: what was read is not the whole video."""


class FrameFeed:
    """A bounded single-producer, single-reader queue of decoded chunks (``max_chunks`` at most in flight)."""

    def __init__(self, max_chunks: int = 4) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_chunks)))
        self._abandoned = threading.Event()
        self._closed = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ producer side
    def put(self, chunk: Any) -> None:
        """Hand one chunk to the reader; blocks while ``max_chunks`` wait unread, drops it once abandoned."""
        if self._closed.is_set():
            raise RuntimeError("put on a closed frame feed")
        self._started.set()
        while not self._abandoned.is_set():
            try:
                self._queue.put(chunk, timeout=0.05)
                return
            except queue.Full:
                continue

    def close(self, error: BaseException | None = None) -> None:
        """No more chunks (``error``: the producer failed, the reader raises :class:`FeedAborted`). Idempotent."""
        if self._closed.is_set():
            return
        self._error = error
        self._closed.set()
        while not self._abandoned.is_set():
            try:
                self._queue.put(_END, timeout=0.05)
                return
            except queue.Full:
                continue

    # ------------------------------------------------------------------ reader side
    @property
    def used(self) -> bool:
        """Blocks until the producer has put a chunk or closed the feed; True when chunks came (or are coming)."""
        while not (self._started.is_set() or self._closed.is_set()):
            self._closed.wait(0.05)
        return self._started.is_set()

    def abandon(self) -> None:
        """The reader stops reading: the producer's later puts return at once."""
        self._abandoned.set()
        while True:  # free a producer blocked on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __iter__(self) -> Iterator[Any]:
        while True:
            chunk = self._queue.get()
            if chunk is _END:
                if self._error is not None:
                    raise FeedAborted(f"the decoding that fed these frames failed: {self._error}")
                return
            yield chunk
