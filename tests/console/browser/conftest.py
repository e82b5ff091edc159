"""Browser tests: the real app served over HTTP (uvicorn in a thread) with in-process workers,
driven by Playwright in the OS's headless Chromium (Playwright's own download is not used)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from infra.settings import Settings
from tests.workflows.workers import running_workers

INSTALL_HINT = (
    "browser tests need Chromium from the OS packages: `apt-get install chromium` "
    "(./cx test installs it when run as root)"
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(INSTALL_HINT)  # CI must run them, never skip
        pytest.skip(INSTALL_HINT)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return {**browser_type_launch_args, "executable_path": path, "args": args}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Workers(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()

    def run(self) -> None:
        async def main() -> None:
            async with running_workers(self.settings):
                self.ready.set()
                await self.stop.wait()

        self.loop.run_until_complete(main())

    def shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.join(timeout=30)


@pytest.fixture(scope="module")
def live_server(settings: Settings) -> Iterator[str]:
    """The console and API at http://127.0.0.1:<port>, with workers on the module's queues."""
    workers = _Workers(settings)
    workers.start()
    assert workers.ready.wait(60), "workers did not start"
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        workers.shutdown()
