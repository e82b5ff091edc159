"""One `function` step call and its result, as the activity sees them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


def failure(error: str, logs: list[str] | None = None) -> FunctionResult:
    return FunctionResult(ok=False, outputs={}, logs=logs or [], error=error)
