"""The `function` step's JavaScript sandbox: V8 (mini-racer) in a pool of helper processes.

Why helper processes and not V8 inside the worker: some allocations make V8 abort the
whole process instead of raising (measured with mini-racer 0.14 / V8 14.4:
`'x'.repeat(2**28).split('')` dies with SIGTRAP), and typed arrays live outside the
heap that `set_hard_memory_limit` watches (a 32 MB limit let `Uint8Array`s grow the
process to 2 GB). In a helper, the kernel's RLIMIT_DATA bounds everything (Linux;
elsewhere only V8's heap limit applies) and a dying V8 only takes the helper with it;
the parent reports the failure and starts another.

Why one V8 context reused across calls: a fresh isolate costs ~4 ms, a call in a warm
one ~0.3 ms, and this runs once per record. Reuse is made safe by freezing every
built-in once per context, deleting globals a call created (before and after each
call, so microtasks cannot carry data over), replacing the context after an
out-of-memory or a global that would not delete, and the whole helper after a timeout.

This module imports nothing from the project so the helper can run it as a script
without loading the worker's packages (`python -c` + `runpy.run_path(__file__)`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from py_mini_racer import MiniRacer

__all__ = [
    "MAX_LOG_LINES",
    "MAX_LOG_LINE_CHARS",
    "MAX_OUTPUT_CHARS",
    "FunctionCall",
    "FunctionResult",
    "FunctionSandbox",
    "SandboxUnavailableError",
    "default_sandbox",
    "run_function",
    "run_function_async",
]

logger = logging.getLogger(__name__)

MAX_LOG_LINES = 100
MAX_LOG_LINE_CHARS = 1000
# Outputs travel in a Temporal payload (2 MB hard limit); fail with a clear message first.
MAX_OUTPUT_CHARS = 1_000_000

# Time the parent allows beyond `timeout_ms` before it kills a helper that did not
# answer: V8 normally stops the code at `timeout_ms` itself; this covers input parsing,
# replacing a context after the previous call and a V8 that ignores termination.
_GRACE_S = 2.0
_STARTUP_TIMEOUT_S = 30.0
# Extra data-segment room per call on top of `memory_mb`, measured: a heap held at its
# limit commits up to ~1.2x the limit (young generation, code space, GC bookkeeping).
_RLIMIT_HEADROOM_BYTES = 128 * 1024 * 1024
# A long-lived context slowly accumulates compiled code and heap fragmentation.
_CALLS_PER_CONTEXT = 5000
_HEADER = struct.Struct(">I")
_MAX_FRAME_BYTES = 256 * 1024 * 1024


@dataclass
class FunctionCall:
    code: str
    payload: dict[str, Any]
    output: dict[str, Any]
    context: dict[str, Any]
    timeout_ms: int = 1000
    memory_mb: int = 32


@dataclass
class FunctionResult:
    ok: bool
    outputs: dict[str, Any]
    logs: list[str]
    error: str | None


class SandboxUnavailableError(RuntimeError):
    """The sandbox itself could not run (helper would not start): infrastructure, retryable."""


def _timeout_message(timeout_ms: int) -> str:
    return f"function exceeded {timeout_ms} ms"


def _memory_message(memory_mb: int) -> str:
    return f"function exceeded {memory_mb} MB memory"


def _failure(error: str, logs: list[str] | None = None) -> FunctionResult:
    return FunctionResult(ok=False, outputs={}, logs=logs or [], error=error)


# --------------------------------------------------------------------------- parent side


class _HelperTimeout(Exception):
    pass


class _HelperDied(Exception):
    pass


_BOOT = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


class _Helper:
    """One helper process speaking length-prefixed JSON frames over its stdin/stdout."""

    def __init__(self) -> None:
        # -P: the helper must not import a stray module from the worker's working directory.
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT, os.path.abspath(__file__)],
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
        except (_HelperTimeout, _HelperDied) as exc:
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
        self._write_all(_HEADER.pack(len(frame)) + frame, deadline)
        return self._read_frame(deadline)

    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            if not self._write_sel.select(_remaining(deadline)):
                raise _HelperTimeout
            try:
                written = os.write(self._in, view)
            except BlockingIOError:
                continue
            except BrokenPipeError as exc:
                raise _HelperDied from exc
            view = view[written:]

    def _read_exact(self, size: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            if not self._read_sel.select(_remaining(deadline)):
                raise _HelperTimeout
            try:
                chunk = os.read(self._out, size - len(buf))
            except BlockingIOError:
                continue
            if not chunk:
                raise _HelperDied
            buf += chunk
        return bytes(buf)

    def _read_frame(self, deadline: float) -> bytes:
        (size,) = _HEADER.unpack(self._read_exact(_HEADER.size, deadline))
        if size > _MAX_FRAME_BYTES:
            raise _HelperDied
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
        self._idle: list[_Helper] = []
        self._started = 0
        self._closed = False
        # Own threads, one per helper: waiting for a helper must not occupy the event
        # loop's default executor, which also resolves DNS for the http activities.
        self._executor = ThreadPoolExecutor(
            max_workers=self.processes, thread_name_prefix="function-sandbox"
        )

    def run(self, call: FunctionCall) -> FunctionResult:
        if call.timeout_ms <= 0 or call.memory_mb <= 0:
            return _failure("timeout_ms and memory_mb must be positive")
        try:
            inputs = json.dumps(
                {"payload": call.payload, "output": call.output, "context": call.context},
                allow_nan=False,
                separators=(",", ":"),
            )
        except (TypeError, ValueError) as exc:
            return _failure(f"function inputs are not JSON: {exc}")
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
        except _HelperTimeout:
            logger.warning("function sandbox helper did not stop at %d ms; killed", call.timeout_ms)
            return _failure(_timeout_message(call.timeout_ms))
        except _HelperDied:
            how = helper.exit_description()
            tail = helper.stderr_tail()
            logger.warning("function sandbox helper died (%s): %s", how, tail[-1000:])
            # V8 aborts the process when an allocation cannot be satisfied (RLIMIT_DATA
            # or its own size limits); the kernel's OOM killer sends SIGKILL.
            if "out of memory" in tail or "invalid size" in tail.lower() or how == "SIGKILL":
                return _failure(_memory_message(call.memory_mb))
            # The helper had only this call's code and data: blame the call, not the worker.
            return _failure(f"function crashed the JavaScript engine ({how})")
        finally:
            self._release(helper, keep)
        logs = [str(line) for line in result.get("logs") or []]
        if result.get("ok"):
            return FunctionResult(ok=True, outputs=result["outputs"], logs=logs, error=None)
        return _failure(str(result.get("error")), logs)

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

    def _acquire(self) -> _Helper:
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
                helper = _Helper()
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

    def _release(self, helper: _Helper, keep: bool) -> None:
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


# --------------------------------------------------------------------------- helper side

# Installed once per V8 context. Everything is inside one closure so user code (compiled
# with `new Function`, which sees only the global scope) cannot reach the runner's state.
_RUNTIME_JS = r"""
(function () {
  "use strict";
  const G = globalThis;
  const { defineProperty, freeze, getOwnPropertyDescriptor, getOwnPropertyDescriptors,
          getPrototypeOf, isExtensible } = Object;
  const { apply, deleteProperty, ownKeys, setPrototypeOf } = Reflect;
  const parse = JSON.parse, stringify = JSON.stringify;
  const FunctionCtor = Function, StringCtor = String, ErrorCtor = Error;
  const RangeErrorCtor = RangeError, TypeErrorCtor = TypeError;
  const ObjectProto = Object.prototype, isArray = Array.isArray;
  const userFrame = /\(eval at [^\n]*?, <anonymous>:(\d+):(\d+)\)/;
  // What V8 says when memory outside the heap (array buffers, wasm) cannot be had.
  const outOfMemory = /allocation failed|could not allocate memory|unable to grow|out of memory/i;
  const MAX_LINES = __MAX_LINES__, MAX_LINE_CHARS = __MAX_LINE_CHARS__;
  const MAX_OUTPUT_CHARS = __MAX_OUTPUT_CHARS__;

  // mini-racer's setTimeout keeps a Set reachable from the global object, a place where
  // one record could leave data for the next; a synchronous body has no use for timers.
  const noTimers = function () { throw new TypeErrorCtor("timers are not available in a function step"); };
  G.setTimeout = noTimers;
  G.clearTimeout = noTimers;
  G.__timer_manager = undefined;
  // ...and its class is a script-level binding: not a property, so not frozen or deleted.
  const resetTimerClass = typeof __TimerManager === "undefined"
    ? () => {} : new FunctionCtor("__TimerManager = undefined;");
  resetTimerClass();

  // Frozen prototypes make `obj.toString = f` or `this.name = "MyError"` fail on the
  // caller's own objects (the "override mistake"): turn those properties into accessors
  // whose setter defines an own property on the target instead.
  const tame = (obj, name) => {
    const desc = getOwnPropertyDescriptor(obj, name);
    if (!desc || !("value" in desc) || !desc.writable || !desc.configurable) return;
    const value = desc.value;
    defineProperty(obj, name, {
      get() { return value; },
      set(newValue) {
        if (this === obj) {
          throw new TypeErrorCtor("Cannot assign to read only property '" + StringCtor(name) + "' of a built-in object");
        }
        if ((typeof this === "object" && this !== null) || typeof this === "function") {
          defineProperty(this, name, { value: newValue, writable: true, enumerable: true, configurable: true });
        }
      },
      enumerable: desc.enumerable,
      configurable: false,
    });
  };
  for (const name of ownKeys(ObjectProto)) tame(ObjectProto, name);
  for (const name of ownKeys(G)) {
    const ctor = getOwnPropertyDescriptor(G, name).value;
    if (typeof ctor !== "function" || typeof ctor.prototype !== "object" || ctor.prototype === null) continue;
    tame(ctor.prototype, "constructor");
    tame(ctor.prototype, "toString");
    if (ctor === ErrorCtor || ctor.prototype instanceof ErrorCtor) {
      tame(ctor.prototype, "name");
      tame(ctor.prototype, "message");
    }
  }

  // Deep-freeze every built-in, including intrinsics not reachable by property names.
  const hidden = [
    () => getPrototypeOf(function* () {}),
    () => getPrototypeOf(async function () {}),
    () => getPrototypeOf(async function* () {}),
    () => getPrototypeOf([][Symbol.iterator]()),
    () => getPrototypeOf(new Map()[Symbol.iterator]()),
    () => getPrototypeOf(new Set()[Symbol.iterator]()),
    () => getPrototypeOf(""[Symbol.iterator]()),
    () => getPrototypeOf(/(?:)/[Symbol.matchAll]("")),
    () => getPrototypeOf([].values().map((x) => x)),
    () => getPrototypeOf(Iterator.from({ next() { return { done: true }; } })),
    () => getPrototypeOf(new Intl.Segmenter().segment("")),
    () => getPrototypeOf(new Intl.Segmenter().segment("")[Symbol.iterator]()),
    () => getOwnPropertyDescriptor((function () { "use strict"; return arguments; })(), "callee").get,
  ];
  const pending = [G];
  for (const find of hidden) { try { pending.push(find()); } catch (e) { /* absent in this V8 */ } }
  const seen = new Set();
  while (pending.length) {
    const obj = pending.pop();
    if (obj === null || (typeof obj !== "object" && typeof obj !== "function") || seen.has(obj)) continue;
    seen.add(obj);
    pending.push(getPrototypeOf(obj));
    const descs = getOwnPropertyDescriptors(obj);
    for (const key of ownKeys(descs)) {
      const desc = descs[key];
      pending.push(desc.value, desc.get, desc.set);
    }
  }
  seen.delete(G);
  for (const obj of seen) freeze(obj);

  // The global object stays extensible (sloppy `x = 1` must work within a call) but its
  // built-in names become read-only, and whatever a call adds is deleted afterwards.
  const fmt = (v) => {
    const t = typeof v;
    if (t === "string") return v;
    if (t === "number" || t === "boolean" || t === "undefined" || t === "symbol") return StringCtor(v);
    if (t === "bigint") return StringCtor(v) + "n";
    if (t === "function") return "[Function: " + (v.name || "(anonymous)") + "]";
    try {
      if (v instanceof ErrorCtor) return StringCtor(v.name) + ": " + StringCtor(v.message);
      const json = stringify(v);
      return json === undefined ? StringCtor(v) : json;
    } catch (e) {
      try { return StringCtor(v); } catch (e2) { return "[object]"; }
    }
  };
  const typeName = (v) => {
    if (v === null) return "null";
    if (isArray(v)) return "array";
    const t = typeof v;
    if (t !== "object") return t;
    const proto = getPrototypeOf(v);
    if (proto === ObjectProto || proto === null) return "object";
    const ctor = proto.constructor;
    return typeof ctor === "function" && ctor.name ? ctor.name : "object with a custom prototype";
  };
  const describe = (error, memoryMb) => {
    try {
      if (error instanceof ErrorCtor) {
        const message = StringCtor(error.message);
        if (error instanceof RangeErrorCtor && outOfMemory.test(message)) {
          return "function exceeded " + memoryMb + " MB memory";
        }
        let text = StringCtor(error.name) + ": " + message;
        const frame = userFrame.exec(StringCtor(error.stack));
        // `new Function` puts two header lines before the body.
        if (frame) text += " (line " + (frame[1] - 2) + ", column " + frame[2] + ")";
        return text;
      }
      return "Uncaught " + fmt(error);
    } catch (e) {
      return "Uncaught exception";
    }
  };
  const failure = (message) => '{"ok":false,"error":' + stringify(message);

  let baseline;
  const globalProto = getPrototypeOf(G);
  const reset = () => {
    let clean = isExtensible(G);
    if (getPrototypeOf(G) !== globalProto && !setPrototypeOf(G, globalProto)) clean = false;
    for (const key of ownKeys(G)) {
      if (!baseline.has(key) && !deleteProperty(G, key)) clean = false;
    }
    resetTimerClass();
    // RegExp.input / lastMatch / $1… keep the last matched string (legacy statics).
    /(?:)/.exec("");
    return clean;
  };

  const run = (code, inputsJson, memoryMb) => {
    // Something the previous call left behind (a microtask that ran after its own
    // clean-up) would not go away: this call must not see it, so ask for a new context.
    if (!reset()) return "R";
    const logs = [];
    let dropped = 0;
    const log = (...args) => {
      if (logs.length >= MAX_LINES) { dropped++; return; }
      let line = args.map(fmt).join(" ");
      if (line.length > MAX_LINE_CHARS) line = line.slice(0, MAX_LINE_CHARS - 1) + "\u2026";
      logs.push(line);
    };
    const console = freeze({ log, info: log, warn: log, error: log, debug: log, trace: log });
    let body;
    try {
      const inputs = parse(inputsJson);
      const fn = new FunctionCtor("payload", "output", "context", "console", code);
      const value = apply(fn, undefined, [inputs.payload, inputs.output, inputs.context, console]);
      const kind = typeName(value);
      if (kind !== "object") {
        body = failure("function must return an object, got " + kind);
      } else {
        const json = stringify(value);
        body = json.length > MAX_OUTPUT_CHARS
          ? failure("function returned " + json.length + " characters of outputs, more than " + MAX_OUTPUT_CHARS)
          : '{"ok":true,"outputs":' + json;
      }
    } catch (error) {
      body = failure(describe(error, memoryMb));
    }
    const clean = reset();
    if (dropped > 0) logs[MAX_LINES - 1] = "\u2026 " + (dropped + 1) + " more lines not shown";
    return (clean ? "C" : "D") + body + ',"logs":' + stringify(logs) + "}";
  };
  defineProperty(G, "__cxgear_run", { value: run, writable: false, enumerable: false, configurable: false });

  baseline = new Set(ownKeys(G));
  for (const key of baseline) {
    const desc = getOwnPropertyDescriptor(G, key);
    try {
      defineProperty(G, key, "value" in desc ? { writable: false, configurable: false } : { configurable: false });
    } catch (e) { /* already fixed */ }
  }
})();
""".replace("__MAX_LINES__", str(MAX_LOG_LINES))
_RUNTIME_JS = _RUNTIME_JS.replace("__MAX_LINE_CHARS__", str(MAX_LOG_LINE_CHARS))
_RUNTIME_JS = _RUNTIME_JS.replace("__MAX_OUTPUT_CHARS__", str(MAX_OUTPUT_CHARS))


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
        self.racer = self._fresh()
        self.calls = 0

    def _fresh(self) -> MiniRacer:
        from py_mini_racer import MiniRacer

        racer = MiniRacer()
        racer.eval(_RUNTIME_JS)
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


def _helper_main() -> None:
    # Frames go to a private copy of stdout; fd 1 is pointed at stderr so a stray print
    # (ours or a library's) cannot corrupt the protocol.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    stdin = sys.stdin.buffer

    def send(data: bytes) -> None:
        out.write(_HEADER.pack(len(data)) + data)

    def receive() -> bytes | None:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
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
                _memory_message(limits["memory_mb"])
                if reached
                else _timeout_message(limits["timeout_ms"])
            )
            send(_error_reply(error, retire=True))
            os._exit(0)
        except (JSOOMException, MemoryError):
            reply = _error_reply(_memory_message(limits["memory_mb"]))
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


if __name__ == "__main__":
    _helper_main()
