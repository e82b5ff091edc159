"""The one error type and its handlers: every error body is {"message", "errorCode"}.

Temporal's errors are translated here, once, so routes only catch them where a status carries a
business meaning of their own (e.g. a journey whose history Temporal no longer has). Anything
else unexpected is answered by `LastResortMiddleware` as JSON with a correlation id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger("api.errors")

RETRY_AFTER_S = 5
CORRELATION_HEADER = "X-Correlation-Id"


class AppError(Exception):
    def __init__(
        self,
        message: str,
        error_code: str,
        status: int = 400,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.status = status
        self.details = details
        self.headers = headers


def not_found(what: str) -> AppError:
    return AppError(f"{what} not found", "NOT_FOUND", 404)


def forbidden(permission: str) -> AppError:
    return AppError(f"Missing permission {permission}", "FORBIDDEN", 403)


def temporal_unavailable(message: str = "Temporal is not reachable; try again") -> AppError:
    return AppError(
        message, "TEMPORAL_UNAVAILABLE", 503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def is_not_found(exc: RPCError) -> bool:
    """Temporal answers NOT_FOUND both for a workflow that never ran and for one that closed."""
    return exc.status == RPCStatusCode.NOT_FOUND


def error_body(message: str, code: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if details is not None:
        body["details"] = details
    return body


class ErrorResponse(JSONResponse):
    """ASCII-escaped JSON: a message quoting a client's lone surrogate still encodes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(
    message: str,
    code: str,
    status: int,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> ErrorResponse:
    return ErrorResponse(error_body(message, code, details), status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _unknown_field(loc: Sequence[Any]) -> str:
    name = str(loc[-1]) if loc else ""
    if "_" in name and to_camel(name) != name:
        # The API speaks camelCase only: point a snake_case client at the name it meant.
        return f"unknown field (field names are camelCase, e.g. {to_camel(name)})"
    return "unknown field"


def translate_temporal(exc: RPCError | WorkflowAlreadyStartedError) -> AppError:
    if isinstance(exc, WorkflowAlreadyStartedError) or exc.status == RPCStatusCode.ALREADY_EXISTS:
        return AppError("The workflow has already been started", "ALREADY_STARTED", 409)
    if exc.status == RPCStatusCode.NOT_FOUND:
        return AppError("Not found in Temporal", "NOT_FOUND", 404)
    if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return AppError(
            "Temporal is busy; try again shortly",
            "TEMPORAL_BUSY",
            503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    # UNAVAILABLE, DEADLINE_EXCEEDED and every other transport or server failure: the caller
    # can only retry later (a Temporal refusal with business meaning is caught by its route).
    return temporal_unavailable()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return error_response(exc.message, exc.error_code, exc.status, exc.details, exc.headers)

    @app.exception_handler(RPCError)
    @app.exception_handler(WorkflowAlreadyStartedError)
    async def _temporal(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RPCError | WorkflowAlreadyStartedError)
        if isinstance(exc, RPCError):
            log.warning("Temporal call failed: %s %s", exc.status.name, exc.message)
        err = translate_temporal(exc)
        return error_response(err.message, err.error_code, err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = _location(tuple(err.get("loc", ())))
            msg = err.get("msg", "")
            if err.get("type") == "extra_forbidden":
                msg = _unknown_field(err.get("loc", ()))
            problems.append({"field": where, "message": msg})
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return error_response(f"Invalid request: {summary}", "VALIDATION_ERROR", 422, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHORIZED"}
        code = codes.get(exc.status_code, "HTTP_ERROR")
        return error_response(str(exc.detail), code, exc.status_code, headers=exc.headers)


class LastResortMiddleware:
    """Answers any exception no handler took as JSON 500 with a correlation id, logged with the
    traceback, instead of Starlette's plain-text 500 (after which the server drops the
    connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            correlation_id = uuid.uuid4().hex
            # The route's template, not the path: paths can carry tokens and addresses.
            route = getattr(scope.get("route"), "path", "(unrouted)")
            log.exception(
                "Unexpected error %s on %s %s", correlation_id, scope.get("method"), route
            )
            if started:
                raise  # a response is half-sent; only the server can end it
            body = error_body(
                f"Unexpected error; quote correlation id {correlation_id} when reporting it",
                "INTERNAL",
            )
            body["correlationId"] = correlation_id
            response = ErrorResponse(body, 500, headers={CORRELATION_HEADER: correlation_id})
            await response(scope, receive, send)
