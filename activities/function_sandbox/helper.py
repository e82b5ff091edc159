"""The sandbox helper process: one V8 context (mini-racer) answering the worker's frames.

Runs in its own process (started by `helper_process.py`) and imports only the standard
library, `protocol.py` and mini-racer, so a helper starts without the worker's packages.

Why one V8 context reused across calls: a fresh isolate costs ~4 ms, a call in a warm
one ~0.3 ms, and this runs once per record. Reuse is made safe by freezing every
built-in once per context (`runtime.js`), deleting globals a call created (before and
after each call, so microtasks cannot carry data over), replacing the context after an
out-of-memory or a global that would not delete, and the whole helper after a timeout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import (
    HEADER,
    MAX_LOG_LINE_CHARS,
    MAX_LOG_LINES,
    MAX_OUTPUT_CHARS,
    memory_message,
    timeout_message,
)

if TYPE_CHECKING:
    from py_mini_racer import MiniRacer

# Extra data-segment room per call on top of `memory_mb`, measured: a heap held at its
# limit commits up to ~1.2x the limit (young generation, code space, GC bookkeeping).
_RLIMIT_HEADROOM_BYTES = 128 * 1024 * 1024
# A long-lived context slowly accumulates compiled code and heap fragmentation.
_CALLS_PER_CONTEXT = 5000


def runtime_js() -> str:
    """The runner installed in every context, with the shared limits filled in."""
    # Read beside this file, not through importlib.resources: the helper loads this module
    # under a package of its own (see helper_process.py), which has no resource reader.
    source = Path(__file__).with_name("runtime.js").read_text(encoding="utf-8")
    return (
        source.replace("__MAX_LINES__", str(MAX_LOG_LINES))
        .replace("__MAX_LINE_CHARS__", str(MAX_LOG_LINE_CHARS))
        .replace("__MAX_OUTPUT_CHARS__", str(MAX_OUTPUT_CHARS))
    )


class _DataLimit:
    """RLIMIT_DATA around each call: the backstop for memory V8's heap limit cannot see."""

    def __init__(self) -> None:
        try:
            import resource

            self._resource: Any = resource
            self._soft, self._hard = resource.getrlimit(resource.RLIMIT_DATA)
            self._page = os.sysconf("SC_PAGE_SIZE")
            with open("/proc/self/statm", "rb"):
                pass
        except (ImportError, OSError, ValueError):
            # Not Linux: only V8's own heap limit applies.
            self._resource = None

    def _data_bytes(self) -> int:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[5]) * self._page

    def tighten(self, memory_mb: int) -> None:
        if self._resource is None:
            return
        limit = self._data_bytes() + 2 * memory_mb * 1024 * 1024 + _RLIMIT_HEADROOM_BYTES
        if self._hard != self._resource.RLIM_INFINITY:
            limit = min(limit, self._hard)
        self._resource.setrlimit(self._resource.RLIMIT_DATA, (limit, self._hard))

    def release(self) -> None:
        # A new isolate reserves hundreds of MB up front: never create one under the limit.
        if self._resource is not None:
            self._resource.setrlimit(self._resource.RLIMIT_DATA, (self._soft, self._hard))


class _Engine:
    """The helper's V8 context plus the limits around each evaluation."""

    def __init__(self) -> None:
        self.limit = _DataLimit()
        self.runtime = runtime_js()
        self.racer = self._fresh()
        self.calls = 0

    def _fresh(self) -> MiniRacer:
        from py_mini_racer import MiniRacer

        racer = MiniRacer()
        racer.eval(self.runtime)
        return racer

    def renew(self) -> None:
        self.limit.release()
        self.racer.close()
        self.racer = self._fresh()
        self.calls = 0

    def evaluate(self, script: str, *, memory_mb: int, timeout_ms: int) -> str:
        """The runner's reply; the data limit stays on until `limit.release()`."""
        self.racer.set_hard_memory_limit(memory_mb * 1024 * 1024)
        self.limit.tighten(memory_mb)
        return str(self.racer.eval(script, timeout_sec=timeout_ms / 1000))


def main() -> None:
    # Frames go to a private copy of stdout; fd 1 is pointed at stderr so a stray print
    # (ours or a library's) cannot corrupt the protocol.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    stdin = sys.stdin.buffer

    def send(data: bytes) -> None:
        out.write(HEADER.pack(len(data)) + data)

    def receive() -> bytes | None:
        header = stdin.read(HEADER.size)
        if len(header) < HEADER.size:
            return None
        (size,) = HEADER.unpack(header)
        data = stdin.read(size)
        return data if len(data) == size else None

    try:
        from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException

        engine = _Engine()
    except Exception as exc:  # reported to the parent, which raises SandboxUnavailableError
        send(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    send(json.dumps({"ready": True, "v8": engine.racer.v8_version}).encode())

    while (frame := receive()) is not None:
        request = json.loads(frame)
        limits = {"memory_mb": int(request["memory_mb"]), "timeout_ms": int(request["timeout_ms"])}
        script = "__cxgear_run({},{},{})".format(
            json.dumps(request["code"]), json.dumps(request["inputs"]), limits["memory_mb"]
        )
        renew = True
        try:
            text = engine.evaluate(script, **limits)
            if text == "R":
                engine.renew()
                text = engine.evaluate(script, **limits)
        except JSTimeoutException:
            # mini-racer stops waiting, but V8 may still be inside a long builtin (a
            # 1e8-element `fill` ignores termination for seconds) and closing the context
            # would wait for it. Keep the data limit, answer, and let the parent replace
            # this process.
            reached = engine.racer.was_hard_memory_limit_reached()
            error = (
                memory_message(limits["memory_mb"])
                if reached
                else timeout_message(limits["timeout_ms"])
            )
            send(_error_reply(error, retire=True))
            os._exit(0)
        except (JSOOMException, MemoryError):
            reply = _error_reply(memory_message(limits["memory_mb"]))
        except JSEvalException as exc:
            reply = _error_reply(str(exc).strip() or type(exc).__name__)
        else:
            # "C": the runner cleaned up after the call; "D": it could not.
            renew = text[0] != "C"
            reply = text[1:].encode()
        engine.limit.release()
        send(reply)
        engine.calls += 1
        if renew or engine.calls >= _CALLS_PER_CONTEXT:
            engine.renew()
    # The parent is gone or closed us; tearing V8 down properly only takes time.
    os._exit(0)


def _error_reply(error: str, *, retire: bool = False) -> bytes:
    return json.dumps({"ok": False, "error": error, "logs": [], "retire": retire}).encode()
