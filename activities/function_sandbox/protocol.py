"""What the worker and its sandbox helpers share: limits, frames and failure messages.

Imports only the standard library: the helper process loads it without the project.
"""

from __future__ import annotations

import struct

MAX_LOG_LINES = 100
MAX_LOG_LINE_CHARS = 1000
# Outputs travel in a Temporal payload (2 MB hard limit); fail with a clear message first.
MAX_OUTPUT_CHARS = 1_000_000

# Each frame is a 4-byte big-endian length and that many bytes of JSON.
HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024


def timeout_message(timeout_ms: int) -> str:
    return f"function exceeded {timeout_ms} ms"


def memory_message(memory_mb: int) -> str:
    return f"function exceeded {memory_mb} MB memory"
