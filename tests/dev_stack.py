"""`cxgear dev` as a user starts it, on free ports and a fresh state dir: for the tests of the
launcher itself and of the commands the README shows."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from cxgear.stack.ports import free_port
from cxgear.stack.seaweedfs import PORTS as SEAWEEDFS_PORTS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _read_lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class DevRun:
    proc: subprocess.Popen[str]
    ports: dict[str, int]
    lines: queue.Queue[str | None]
    output: list[str]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def read_until(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in self.output):
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, f"cxgear dev exited before {prefix!r}:\n{self.text}"
            self.output.append(line)

    def read_rest(self) -> str:
        while (line := self.lines.get(timeout=10)) is not None:
            self.output.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.output)

    def descendants(self) -> list[psutil.Process]:
        return list(psutil.Process(self.proc.pid).children(recursive=True))


def dev_env(state_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """The caller's environment without its CXGEAR_ settings, pointed at the given ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXGEAR_")}
    env.update(
        CXGEAR_STATE_DIR=str(state_dir),
        CXGEAR_DATABASE_URL=f"postgresql+psycopg://cxgear@127.0.0.1:{ports['pg']}/cxgear",
        CXGEAR_TEMPORAL_ADDRESS=f"127.0.0.1:{ports['temporal']}",
        CXGEAR_TEMPORAL_UI_PORT=str(ports["ui"]),
        CXGEAR_VAULT_ADDRESS=f"http://127.0.0.1:{ports['bao']}",
        CXGEAR_API_PORT=str(ports["api"]),
        CXGEAR_EMBEDDED_S3_PORT=str(ports["s3"]),
        CXGEAR_PUBLIC_API_URL=f"http://127.0.0.1:{ports['api']}",
    )
    return env


@contextmanager
def running_dev(
    command: Sequence[str],
    state_dir: Path,
    *,
    ignore_sigint: bool = False,
    ready_timeout: float = 180,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[DevRun]:
    """Starts `command` (`cxgear dev` in some form) and yields once it printed its ready line;
    stops it with Ctrl-C (SIGINT) afterwards, killing whatever it left behind. `ignore_sigint`
    starts it as a shell's background job does: with SIGINT ignored. `extra_env` adds
    settings, as a user would prefix them to the command."""
    ports = {
        "pg": free_port(),
        "temporal": free_port(),
        "ui": free_port(),
        "bao": free_port(consecutive=2),
        "api": free_port(),
        # SeaweedFS's S3 gateway and the master, volume and filer ports after it.
        "s3": free_port(consecutive=SEAWEEDFS_PORTS),
    }
    proc = subprocess.Popen(
        list(command),
        cwd=REPO_ROOT,
        env={**dev_env(state_dir, ports), **(extra_env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint if ignore_sigint else None,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    run = DevRun(proc, ports, lines, [])
    descendants: list[psutil.Process] = []
    try:
        run.read_until("CXGear ready in", timeout=ready_timeout)
        descendants = run.descendants()
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in descendants:
            if child.is_running():
                child.kill()
