"""JSON bodies whose numbers keep the text the client wrote, for the routes that store rows.

Rows are text, and numbers are documented to be stored as their JSON text; `json.loads` would
turn `1e5` into 100000.0 and `1.10` into 1.1, and accept `NaN` and `1E400` (infinity). These
routes parse numbers into `NumberText` strings instead, marking the non-finite ones so the
service can refuse them with a 422 that names the record and field (an error raised inside
the parser would reach the client only as FastAPI's generic 400).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class NumberText(str):
    """A JSON number, as the text the client sent."""

    __slots__ = ()


class NonFiniteNumber(NumberText):
    """`NaN`, `Infinity`, `-Infinity`, or a number past the float range such as `1E400`."""

    __slots__ = ()


def _float(text: str) -> NumberText:
    return NumberText(text) if math.isfinite(float(text)) else NonFiniteNumber(text)


def loads(body: bytes | str) -> Any:
    return json.loads(
        body, parse_int=NumberText, parse_float=_float, parse_constant=NonFiniteNumber
    )


class NumberTextRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class NumberTextRoute(APIRoute):
    """A route whose JSON body keeps its numbers' text (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(NumberTextRequest(request.scope, request.receive))

        return handle
