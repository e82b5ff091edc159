"""The `function` step's JavaScript sandbox, against real V8 helper processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from activities.function_sandbox import (
    MAX_LOG_LINE_CHARS,
    MAX_LOG_LINES,
    FunctionCall,
    FunctionResult,
    FunctionSandbox,
    run_function,
    run_function_async,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[FunctionSandbox]:
    sandbox = FunctionSandbox(processes=2)
    yield sandbox
    sandbox.close()


def make_call(
    code: str,
    *,
    payload: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    timeout_ms: int = 1000,
    memory_mb: int = 32,
) -> FunctionCall:
    return FunctionCall(
        code=code,
        payload=payload or {},
        output=output or {},
        context=context or {},
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
    )


def run(sandbox: FunctionSandbox, code: str, **kwargs: Any) -> FunctionResult:
    return sandbox.run(make_call(code, **kwargs))


def assert_still_works(sandbox: FunctionSandbox) -> None:
    for n in range(3):
        result = run(sandbox, "return {n: payload.n + 1}", payload={"n": n})
        assert result.ok, result.error
        assert result.outputs == {"n": n + 1}


class TestOutputs:
    def test_returned_object_becomes_the_outputs(self, sandbox: FunctionSandbox) -> None:
        result = run(
            sandbox,
            "return {greeting: 'Hi ' + payload.first_name, total: output.count * 2,"
            " job: context.job_id, nested: {list: [1, null, 'x']}}",
            payload={"first_name": "Ann"},
            output={"count": 21},
            context={"job_id": "j1"},
        )

        assert result == FunctionResult(
            ok=True,
            outputs={
                "greeting": "Hi Ann",
                "total": 42,
                "job": "j1",
                "nested": {"list": [1, None, "x"]},
            },
            logs=[],
            error=None,
        )

    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            ("return 5", "number"),
            ("return 'text'", "string"),
            ("return [1, 2]", "array"),
            ("return null", "null"),
            ("let x = 1", "undefined"),
            ("return new Date(0)", "Date"),
        ],
    )
    def test_non_object_return_is_an_error(
        self, sandbox: FunctionSandbox, code: str, kind: str
    ) -> None:
        result = run(sandbox, code)

        assert not result.ok
        assert result.error == f"function must return an object, got {kind}"
        assert result.outputs == {}

    def test_unserialisable_outputs_are_an_error(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "return {big: 10n}")

        assert not result.ok
        assert result.error is not None and "BigInt" in result.error

    def test_inputs_are_copies(self, sandbox: FunctionSandbox) -> None:
        payload = {"tags": ["a"]}

        run(sandbox, "payload.tags.push('b'); return {}", payload=payload)

        assert payload == {"tags": ["a"]}


class TestConsole:
    def test_console_log_is_captured_like_a_browser_prints_it(
        self, sandbox: FunctionSandbox
    ) -> None:
        result = run(
            sandbox,
            "console.log('plain', 42, {a: [1, 'two']}, null, undefined, true);"
            "console.warn(new TypeError('bad'));"
            "console.info(function named() {});"
            "return {}",
        )

        assert result.ok
        assert result.logs == [
            'plain 42 {"a":[1,"two"]} null undefined true',
            "TypeError: bad",
            "[Function: named]",
        ]

    def test_log_lines_and_their_length_are_capped(self, sandbox: FunctionSandbox) -> None:
        result = run(
            sandbox, "for (let i = 0; i < 150; i++) console.log(i, 'x'.repeat(5000)); return {}"
        )

        assert result.ok
        assert len(result.logs) == MAX_LOG_LINES
        assert result.logs[0].startswith("0 xxx")
        assert all(len(line) <= MAX_LOG_LINE_CHARS for line in result.logs)
        assert result.logs[-1] == "… 51 more lines not shown"

    def test_logs_are_kept_when_the_function_throws(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "console.log('before'); throw new Error('after')")

        assert not result.ok
        assert result.logs == ["before"]


class TestErrors:
    def test_syntax_error_gives_the_parser_message(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "return {a: }")

        assert not result.ok
        assert result.error is not None and result.error.startswith("SyntaxError: ")

    def test_thrown_error_gives_message_and_line(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "const a = 1;\nconst b = payload.missing.field;\nreturn {}")

        assert not result.ok
        assert result.error == (
            "TypeError: Cannot read properties of undefined (reading 'field') (line 2, column 27)"
        )

    def test_thrown_non_error_value(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "throw {code: 7}")

        assert result.error == 'Uncaught {"code":7}'

    def test_deep_recursion_is_an_ordinary_error(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "function f() { return f() } return f()")

        assert result.error is not None and "Maximum call stack size exceeded" in result.error
        assert_still_works(sandbox)


class TestLimits:
    def test_infinite_loop_stops_at_the_timeout(self, sandbox: FunctionSandbox) -> None:
        started = time.monotonic()
        result = run(sandbox, "while (true) {}", timeout_ms=300)
        elapsed = time.monotonic() - started

        assert result == FunctionResult(
            ok=False, outputs={}, logs=[], error="function exceeded 300 ms"
        )
        assert elapsed < 5
        assert_still_works(sandbox)

    def test_growing_heap_stops_at_the_memory_limit(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "let a = []; while (true) a.push(new Array(1e6).fill(1))")

        assert not result.ok
        assert result.error == "function exceeded 32 MB memory"
        assert_still_works(sandbox)

    def test_memory_outside_the_heap_is_limited_too(self, sandbox: FunctionSandbox) -> None:
        # Typed arrays are not counted by V8's heap limit; the helper's data limit stops them.
        result = run(
            sandbox,
            "const keep = []; while (true) { const b = new Uint8Array(2 ** 26); b.fill(1); keep.push(b) }",
        )

        assert result.error == "function exceeded 32 MB memory"
        assert_still_works(sandbox)

    def test_allocation_that_aborts_v8_only_ends_the_helper(self, sandbox: FunctionSandbox) -> None:
        # In-process this kills the Python interpreter (V8 fatal error, SIGTRAP).
        result = run(sandbox, "const s = 'x'.repeat(2 ** 28); return {n: s.split('').length}")

        assert not result.ok
        assert result.error == "function exceeded 32 MB memory"
        assert_still_works(sandbox)

    def test_one_huge_array_fails_cleanly(self, sandbox: FunctionSandbox) -> None:
        started = time.monotonic()
        result = run(sandbox, "return {n: new Array(1e8).fill(1).length}", timeout_ms=500)

        assert not result.ok
        assert result.error in ("function exceeded 32 MB memory", "function exceeded 500 ms")
        assert time.monotonic() - started < 10
        assert_still_works(sandbox)

    def test_non_positive_limits_are_refused(self, sandbox: FunctionSandbox) -> None:
        result = run(sandbox, "return {}", timeout_ms=0)

        assert result.error == "timeout_ms and memory_mb must be positive"


class TestIsolation:
    @pytest.mark.parametrize(
        "stash",
        [
            "globalThis.a = payload.secret",
            "a = payload.secret",
            "(0, eval)('var a = \"s3\"')",
            "Object.defineProperty(globalThis, 'a', {value: payload.secret, configurable: false})",
            "Object.setPrototypeOf(globalThis, {a: payload.secret})",
            # Microtasks run after the call has returned and cleaned up.
            "Promise.resolve().then(() => { globalThis.a = payload.secret })",
            "Promise.resolve().then(() => Object.defineProperty("
            "globalThis, 'a', {value: payload.secret, configurable: false}))",
            # mini-racer's timer class is a script-level binding, not a global property.
            "__TimerManager = payload.secret; globalThis.a = __TimerManager",
        ],
    )
    def test_globals_do_not_leak_between_calls(self, sandbox: FunctionSandbox, stash: str) -> None:
        # Sequential calls reuse the most recently used helper, so the next call runs
        # in the same V8 context unless it had to be replaced.
        stashed = run(sandbox, stash + "; return {}", payload={"secret": "s3"})
        assert stashed.ok, stashed.error

        for _ in range(2):
            result = run(
                sandbox,
                "return {a: typeof a === 'undefined' ? null : a,"
                " timers: typeof __TimerManager === 'undefined' ? null : __TimerManager}",
            )
            assert result.outputs == {"a": None, "timers": None}

    def test_built_ins_cannot_be_changed_for_later_calls(self, sandbox: FunctionSandbox) -> None:
        stashed = run(
            sandbox,
            "Array.prototype.stash = payload.secret;"
            "Object.prototype.stash = payload.secret;"
            "JSON.parse = () => payload.secret;"
            "Math.max = () => 0;"
            "RegExp.input = payload.secret; /(s3)/.exec(payload.secret);"
            "return {}",
            payload={"secret": "s3"},
        )
        assert stashed.ok, stashed.error

        for _ in range(2):
            result = run(
                sandbox,
                "return {array: [].stash ?? null, object: ({}).stash ?? null,"
                " parsed: JSON.parse('[1]'), max: Math.max(1, 2), input: RegExp.input,"
                " group: RegExp.$1}",
            )
            assert result.outputs == {
                "array": None,
                "object": None,
                "parsed": [1],
                "max": 2,
                "input": "",
                "group": "",
            }

    def test_own_properties_named_like_built_ins_still_work(self, sandbox: FunctionSandbox) -> None:
        result = run(
            sandbox,
            "class NotFound extends Error { constructor(m) { super(m); this.name = 'NotFound' } }"
            "const counts = {}; counts.constructor = 1; counts.toString = () => 'counts';"
            "return {error: String(new NotFound('x')), counts: String(counts), c: counts.constructor}",
        )

        assert result.outputs == {"error": "NotFound: x", "counts": "counts", "c": 1}

    def test_no_host_apis(self, sandbox: FunctionSandbox) -> None:
        result = run(
            sandbox,
            "const names = ['require', 'process', 'fetch', 'XMLHttpRequest', 'Deno', 'Bun', 'module'];"
            "let timers; try { setTimeout(() => {}, 1); timers = 'available' }"
            " catch (e) { timers = e.message }"
            "return {present: names.filter(n => typeof globalThis[n] !== 'undefined'), timers}",
        )

        assert result.outputs == {
            "present": [],
            "timers": "timers are not available in a function step",
        }

    async def test_concurrent_calls_get_their_own_inputs(self, sandbox: FunctionSandbox) -> None:
        results = await asyncio.gather(
            *(
                sandbox.run_async(
                    make_call(
                        "console.log(payload.i); return {i: payload.i, s: String(payload.i).repeat(3)}",
                        payload={"i": i},
                    )
                )
                for i in range(40)
            )
        )

        assert [r.outputs for r in results] == [{"i": i, "s": str(i) * 3} for i in range(40)]
        assert [r.logs for r in results] == [[str(i)] for i in range(40)]


class TestModuleFunctions:
    def test_run_function_uses_the_shared_sandbox(self) -> None:
        assert run_function(make_call("return {ok: true}")).outputs == {"ok": True}

    async def test_run_function_async_does_not_block_the_loop(self) -> None:
        """The loop keeps turning while user code spins: five ticks happen before it returns."""
        ticked = asyncio.Event()

        async def ticker() -> None:
            for _ in range(5):
                await asyncio.sleep(0.01)
            ticked.set()

        task = asyncio.create_task(ticker())
        run = asyncio.create_task(
            run_function_async(
                make_call("const end = Date.now() + 800; while (Date.now() < end) {} return {}")
            )
        )
        try:
            await asyncio.wait({run, task}, return_when=asyncio.FIRST_COMPLETED)
            assert ticked.is_set() and not run.done()
            result = await run
        finally:
            task.cancel()
            run.cancel()

        assert result.ok
