"""Byte streams re-cut into blocks of a useful size (COPY and HTTP hand out small pieces)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def coalesce(
    chunks: AsyncIterable[bytes | bytearray | memoryview], size: int
) -> AsyncIterator[bytes]:
    """The same bytes in blocks of at least `size` (the last one may be shorter)."""
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        if len(pending) >= size:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)
