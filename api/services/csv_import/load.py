"""`load_csv`: stream a request's CSV to a loader thread and wait for its commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import aclosing, suppress

from starlette.requests import Request

from api.services.csv_import.channel import BlockChannel
from api.services.csv_import.errors import table_empty_for_append, table_not_empty
from api.services.csv_import.loader import CsvLoader, ImportMode, LoadResult
from api.services.csv_import.request_body import body_blocks
from models.data_table import DataTable


def _settle(
    future: asyncio.Future[LoadResult], result: LoadResult | None, error: BaseException | None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    elif result is not None:
        future.set_result(result)


def _run_worker(
    work: Callable[[Iterator[bytes]], LoadResult],
    channel: BlockChannel,
    loop: asyncio.AbstractEventLoop,
    done: asyncio.Future[LoadResult],
) -> None:
    result: LoadResult | None = None
    error: BaseException | None = None
    try:
        result = work(channel.blocks())
    except BaseException as exc:  # handed to the request, which re-raises it
        error = exc
    with suppress(RuntimeError):  # the loop closed under us: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, done, result, error)


async def load_csv(
    request: Request,
    *,
    table: DataTable,
    mode: ImportMode,
    conninfo: str,
    max_columns: int,
    formula_guard: bool = True,
) -> LoadResult:
    """Stream the request's CSV into the table; returns once the rows are committed."""
    if mode is ImportMode.import_ and table.columns:
        raise table_not_empty()
    if mode is ImportMode.append and not table.columns:
        raise table_empty_for_append()
    loop = asyncio.get_running_loop()
    channel = BlockChannel(loop)
    done: asyncio.Future[LoadResult] = loop.create_future()
    loader = CsvLoader(
        conninfo=conninfo,
        table_id=table.id,
        org_id=table.org_id,
        mode=mode,
        max_columns=max_columns,
        formula_guard=formula_guard,
    )
    # A plain thread rather than the default executor: an import can take minutes and must not
    # hold one of the few threads that DNS lookups and other to_thread calls share.
    threading.Thread(
        target=_run_worker,
        args=(loader.run, channel, loop, done),
        name=f"csv-{mode.value}-{table.id}",
        daemon=True,
    ).start()
    try:
        async with aclosing(body_blocks(request)) as blocks:
            async for block in blocks:
                if not await channel.put(block, done):
                    break
            else:
                await channel.put(None, done)
    except BaseException:
        channel.abort()
        await asyncio.wait([done])
        with suppress(BaseException):
            done.result()
        raise
    return await done
