"""The worker's handle on one sandbox helper process: start it, exchange frames, kill it."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from activities.function_sandbox.call import SandboxUnavailableError
from activities.function_sandbox.protocol import HEADER, MAX_FRAME_BYTES


class HelperTimeout(Exception):
    pass


class HelperDied(Exception):
    pass


# The helper loads this directory as a package of its own and runs `helper.main()`:
# importing it as `activities.function_sandbox` would import `activities/__init__.py`
# and with it every activity and provider SDK.
_PACKAGE = "cxgear_function_sandbox"
_BOOT = (
    "import importlib, sys, types; "
    "pkg = types.ModuleType(sys.argv[1]); pkg.__path__ = [sys.argv[2]]; "
    "sys.modules[sys.argv[1]] = pkg; "
    "importlib.import_module(sys.argv[1] + '.helper').main()"
)


class HelperProcess:
    """One helper process speaking length-prefixed JSON frames over its stdin/stdout."""

    def __init__(self) -> None:
        # -P: the helper must not import a stray module from the worker's working directory.
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT, _PACKAGE, str(Path(__file__).resolve().parent)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            # A Ctrl-C aimed at the worker must not hit helpers mid-call; they exit on
            # stdin EOF when the worker goes away.
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._read_sel = selectors.DefaultSelector()
        self._read_sel.register(self._out, selectors.EVENT_READ)
        self._write_sel = selectors.DefaultSelector()
        self._write_sel.register(self._in, selectors.EVENT_WRITE)
        self._stderr_tail: deque[bytes] = deque(maxlen=64)
        self._drain = threading.Thread(
            target=self._drain_stderr, name="function-sandbox-stderr", daemon=True
        )
        self._drain.start()

    def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        while chunk := stream.read(4096):
            self._stderr_tail.append(chunk)
        stream.close()

    def stderr_tail(self) -> str:
        self._drain.join(timeout=1.0)
        return b"".join(self._stderr_tail).decode("utf-8", "replace")[-4000:]

    def wait_ready(self, timeout_s: float) -> None:
        try:
            frame = self._read_frame(time.monotonic() + timeout_s)
        except (HelperTimeout, HelperDied) as exc:
            self.kill()
            raise SandboxUnavailableError(
                f"function sandbox helper did not start: {type(exc).__name__}; "
                f"stderr: {self.stderr_tail()!r}"
            ) from exc
        ready = json.loads(frame)
        if not ready.get("ready"):
            self.kill()
            raise SandboxUnavailableError(f"function sandbox helper failed: {ready.get('error')}")

    def request(self, frame: bytes, deadline: float) -> bytes:
        self._write_all(HEADER.pack(len(frame)) + frame, deadline)
        return self._read_frame(deadline)

    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            if not self._write_sel.select(_remaining(deadline)):
                raise HelperTimeout
            try:
                written = os.write(self._in, view)
            except BlockingIOError:
                continue
            except BrokenPipeError as exc:
                raise HelperDied from exc
            view = view[written:]

    def _read_exact(self, size: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            if not self._read_sel.select(_remaining(deadline)):
                raise HelperTimeout
            try:
                chunk = os.read(self._out, size - len(buf))
            except BlockingIOError:
                continue
            if not chunk:
                raise HelperDied
            buf += chunk
        return bytes(buf)

    def _read_frame(self, deadline: float) -> bytes:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > MAX_FRAME_BYTES:
            raise HelperDied
        return self._read_exact(size, deadline)

    def exit_description(self) -> str:
        code = self.proc.wait()
        if code < 0:
            try:
                return signal.Signals(-code).name
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._read_sel.close()
        self._write_sel.close()


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
