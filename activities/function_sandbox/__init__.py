"""The `function` step's JavaScript sandbox: V8 (mini-racer) in a pool of helper processes.

- `pool.py`: `FunctionSandbox`, the pool the worker calls (and why processes, not threads);
- `helper_process.py`: the worker's handle on one helper (start, frames, kill);
- `helper.py`: what runs inside a helper, around one reused V8 context;
- `runtime.js`: the JavaScript installed in that context (freezing, clean-up, the runner);
- `protocol.py`: limits, framing and messages both sides share.
"""

from activities.function_sandbox.call import (
    FunctionCall,
    FunctionResult,
    SandboxUnavailableError,
)
from activities.function_sandbox.pool import (
    FunctionSandbox,
    default_sandbox,
    run_function,
    run_function_async,
)
from activities.function_sandbox.protocol import (
    MAX_LOG_LINE_CHARS,
    MAX_LOG_LINES,
    MAX_OUTPUT_CHARS,
)

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
