"""The bounded hand-over of body blocks from the event loop to the loader thread."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

CHANNEL_BLOCKS = 8


class UploadAborted(Exception):
    """The request side stopped (client gone, body too large, bad multipart): roll back."""


class BlockChannel:
    """Hands body blocks from the event loop to the worker thread; its bound is the backpressure."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = CHANNEL_BLOCKS) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize)
        self._loop = loop
        self._space = asyncio.Event()
        self._aborted = threading.Event()

    async def put(self, block: bytes | None, consumer: asyncio.Future[Any]) -> bool:
        """Queue a block (None = end of body); False when the worker has already finished."""
        while not consumer.done():
            try:
                self._queue.put_nowait(block)
                return True
            except queue.Full:
                pass
            self._space.clear()
            # The worker's wake-up runs on this loop, so it cannot slip in between these lines.
            if self._queue.full():
                waiter = asyncio.ensure_future(self._space.wait())
                try:
                    await asyncio.wait({waiter, consumer}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        return False

    def abort(self) -> None:
        self._aborted.set()
        # Wake a worker blocked on an empty queue; it checks the flag before using the block.
        with suppress(queue.Full):
            self._queue.put_nowait(b"")

    def blocks(self) -> Iterator[bytes]:
        """Worker side: the body's blocks, ending normally only after the whole body arrived."""
        while True:
            try:
                block = self._queue.get(timeout=1.0)
            except queue.Empty:
                if self._aborted.is_set():
                    raise UploadAborted from None
                continue
            if self._aborted.is_set():
                raise UploadAborted
            try:
                self._loop.call_soon_threadsafe(self._space.set)
            except RuntimeError:  # the loop is gone: nobody will finish this upload
                raise UploadAborted from None
            if block is None:
                return
            if block:
                yield block
