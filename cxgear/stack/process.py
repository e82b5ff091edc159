"""A server of the embedded stack as our child process: spawn, wait until ready, log, stop.

`ServerProcess` holds what PostgreSQL, Temporal and OpenBao share: one child process with its
output appended to a log file, started without waiting (so all three boot in parallel), polled
until ready while a death during start-up is reported with the log's last line, and stopped
with a signal, a wait and a kill of its whole process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from cxgear.stack import StackError
from cxgear.stack.ports import LOOPBACK

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _death_signal_hook(sig: signal.Signals) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to signal the child when we die, even by SIGKILL.

    The kernel ties this to the thread that forked, so it is only safe from the main thread
    (a pool thread exiting would take the server with it).
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    # Resolved before fork: the child must not load libraries between fork and exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return hook


def spawn(
    args: Sequence[str | os.PathLike[str]],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a server with output appended to log_file, in its own session.

    Its own session keeps a terminal Ctrl-C away from the children, so the launcher can stop them
    in order (API before the database it talks to).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        # Logs are appended across runs; a marker shows where each run begins. The program name
        # only: arguments can carry a token.
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        out.write(f"\n=== {stamp} starting {Path(os.fspath(args[0])).name} ===\n".encode())
        out.flush()
        return subprocess.Popen(
            [os.fspath(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            start_new_session=True,
            preexec_fn=_death_signal_hook(death_signal),
        )


def stop_process(
    proc: subprocess.Popen[bytes] | None,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 20,
) -> int | None:
    """Signal, wait, then kill the whole process group; returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %s ignored %s for %ss; killing it", proc.pid, sig.name, timeout)
    # Helpers of the server (postgres backends) share its process group; none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


def tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def died_during_startup(what: str, code: int, log_file: Path) -> StackError:
    last = tail(log_file)
    return StackError(
        f"{what} exited during startup (code {code}); see {log_file}"
        + (f": {last}" if last else "")
    )


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    proc: subprocess.Popen[bytes],
    log_file: Path,
    timeout: float,
    interval: float = 0.05,
) -> None:
    """Poll ready() until true; a dead process or the deadline raises StackError naming the log."""
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise died_during_startup(what, code, log_file)
        if ready():
            return
        if time.monotonic() > deadline:
            raise StackError(f"{what} not ready after {timeout:.0f}s; see {log_file}")
        time.sleep(interval)


def tcp_open(port: int, host: str = LOOPBACK) -> bool:
    """True once something accepts connections on the port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def default_log_file(state: Path | None, slug: str, port: int) -> Path:
    """Beside the server's data (`postgres/` → `postgres.log`), or in the temp dir without any."""
    if state is not None:
        return state.with_suffix(".log")
    return Path(tempfile.gettempdir()) / f"cxgear-{slug}-{port}.log"


@dataclass
class Launch:
    """How to spawn a server: its command line and what it runs with."""

    args: Sequence[str | os.PathLike[str]]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: int | None = None
    group: int | None = None


class ServerProcess:
    """One embedded server run as our child process; subclasses say how it launches and when
    it is ready."""

    name: ClassVar[str]
    # Also the signal the kernel sends the server if we die without stopping it.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 20

    def __init__(self, port: int, log_file: Path) -> None:
        self.port = port
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def what(self) -> str:
        return f"{self.name} (port {self.port})"

    def start(self, timeout: float = 60) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Spawn the server without waiting for it; nothing to do while it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return
        launch = self._prepare()
        self._proc = spawn(
            launch.args,
            log_file=self.log_file,
            env=launch.env,
            cwd=launch.cwd,
            user=launch.user,
            group=launch.group,
            death_signal=self.stop_signal,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        if self._proc is None:
            raise StackError(f"{self.name} was not launched")
        self._wait_ready(timeout)

    def stop(self) -> None:
        stop_process(self._proc, sig=self.stop_signal, timeout=self.stop_timeout)
        self._proc = None

    def _prepare(self) -> Launch:
        """Whatever must exist before the server starts, and how to spawn it."""
        raise NotImplementedError

    def _wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    def _not_ready(self, timeout: float) -> StackError:
        """Why the server is not up: it died (with its log's last line) or it is too slow."""
        code = self._proc.poll() if self._proc is not None else None
        if code is not None:
            return died_during_startup(self.what, code, self.log_file)
        return StackError(f"{self.what} not ready after {timeout:.0f}s; see {self.log_file}")

    def _poll(
        self,
        ready: Callable[[], bool],
        deadline: float,
        *,
        what: str | None = None,
        at_least: float = 0.0,
    ) -> None:
        """wait_until() for this server, with what time is left before the deadline."""
        assert self._proc is not None
        wait_until(
            ready,
            what=what or self.what,
            proc=self._proc,
            log_file=self.log_file,
            timeout=max(deadline - time.monotonic(), at_least),
        )
