"""A pool of sandbox helper processes that runs `function` steps' JavaScript.

Why helper processes and not V8 inside the worker: some allocations make V8 abort the
whole process instead of raising (measured with mini-racer 0.14 / V8 14.4:
`'x'.repeat(2**28).split('')` dies with SIGTRAP), and typed arrays live outside the
heap that `set_hard_memory_limit` watches (a 32 MB limit let `Uint8Array`s grow the
process to 2 GB). In a helper, the kernel's RLIMIT_DATA bounds everything (Linux;
elsewhere only V8's heap limit applies) and a dying V8 only takes the helper with it;
the parent reports the failure and starts another.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from activities.function_sandbox.call import (
    FunctionCall,
    FunctionResult,
    SandboxUnavailableError,
    failure,
)
from activities.function_sandbox.helper_process import HelperDied, HelperProcess, HelperTimeout
from activities.function_sandbox.protocol import memory_message, timeout_message

logger = logging.getLogger(__name__)

# Time the parent allows beyond `timeout_ms` before it kills a helper that did not
# answer: V8 normally stops the code at `timeout_ms` itself; this covers input parsing,
# replacing a context after the previous call and a V8 that ignores termination.
_GRACE_S = 2.0
_STARTUP_TIMEOUT_S = 30.0


def _default_processes() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


class FunctionSandbox:
    """A pool of helper processes, each running one V8 isolate; thread-safe.

    `processes` bounds how many functions run at once (one per helper, each pinned to
    one core while it runs). Helpers start lazily and are replaced when one dies.
    """

    def __init__(self, *, processes: int | None = None) -> None:
        self.processes = processes or _default_processes()
        self._lock = threading.Condition()
        self._idle: list[HelperProcess] = []
        self._started = 0
        self._closed = False
        # Own threads, one per helper: waiting for a helper must not occupy the event
        # loop's default executor, which also resolves DNS for the http activities.
        self._executor = ThreadPoolExecutor(
            max_workers=self.processes, thread_name_prefix="function-sandbox"
        )

    def run(self, call: FunctionCall) -> FunctionResult:
        if call.timeout_ms <= 0 or call.memory_mb <= 0:
            return failure("timeout_ms and memory_mb must be positive")
        try:
            inputs = json.dumps(
                {"payload": call.payload, "output": call.output, "context": call.context},
                allow_nan=False,
                separators=(",", ":"),
            )
        except (TypeError, ValueError) as exc:
            return failure(f"function inputs are not JSON: {exc}")
        frame = json.dumps(
            {
                "code": call.code,
                "inputs": inputs,
                "timeout_ms": call.timeout_ms,
                "memory_mb": call.memory_mb,
            },
            separators=(",", ":"),
        ).encode()
        helper = self._acquire()
        keep = False
        try:
            reply = helper.request(frame, time.monotonic() + call.timeout_ms / 1000 + _GRACE_S)
            result = json.loads(reply)
            keep = not result.get("retire")
        except HelperTimeout:
            logger.warning("function sandbox helper did not stop at %d ms; killed", call.timeout_ms)
            return failure(timeout_message(call.timeout_ms))
        except HelperDied:
            how = helper.exit_description()
            tail = helper.stderr_tail()
            logger.warning("function sandbox helper died (%s): %s", how, tail[-1000:])
            # V8 aborts the process when an allocation cannot be satisfied (RLIMIT_DATA
            # or its own size limits); the kernel's OOM killer sends SIGKILL.
            if "out of memory" in tail or "invalid size" in tail.lower() or how == "SIGKILL":
                return failure(memory_message(call.memory_mb))
            # The helper had only this call's code and data: blame the call, not the worker.
            return failure(f"function crashed the JavaScript engine ({how})")
        finally:
            self._release(helper, keep)
        logs = [str(line) for line in result.get("logs") or []]
        if result.get("ok"):
            return FunctionResult(ok=True, outputs=result["outputs"], logs=logs, error=None)
        return failure(str(result.get("error")), logs)

    async def run_async(self, call: FunctionCall) -> FunctionResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run, call)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lock.notify_all()
        # Helpers hold no state worth a graceful exit.
        for helper in idle:
            helper.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _acquire(self) -> HelperProcess:
        with self._lock:
            while True:
                if self._closed:
                    raise SandboxUnavailableError("function sandbox is closed")
                if self._idle:
                    return self._idle.pop()
                if self._started < self.processes:
                    self._started += 1
                    break
                self._lock.wait()
        try:
            try:
                helper = HelperProcess()
            except OSError as exc:
                raise SandboxUnavailableError(
                    f"cannot start function sandbox helper: {exc}"
                ) from exc
            helper.wait_ready(_STARTUP_TIMEOUT_S)
        except BaseException:
            with self._lock:
                self._started -= 1
                self._lock.notify()
            raise
        return helper

    def _release(self, helper: HelperProcess, keep: bool) -> None:
        with self._lock:
            if keep and not self._closed:
                self._idle.append(helper)
                self._lock.notify()
                return
            self._started -= 1
            self._lock.notify()
        helper.kill()


_default: tuple[int, FunctionSandbox] | None = None
_default_lock = threading.Lock()


def default_sandbox() -> FunctionSandbox:
    """The process-wide sandbox used by `run_function`; created on first use."""
    global _default
    with _default_lock:
        # A forked child must not share the parent's helper pipes.
        if _default is None or _default[0] != os.getpid():
            sandbox = FunctionSandbox()
            atexit.register(sandbox.close)
            _default = (os.getpid(), sandbox)
        return _default[1]


def run_function(call: FunctionCall) -> FunctionResult:
    """Run `call.code` (a JavaScript function body) and return its outputs; blocks."""
    return default_sandbox().run(call)


async def run_function_async(call: FunctionCall) -> FunctionResult:
    return await default_sandbox().run_async(call)
