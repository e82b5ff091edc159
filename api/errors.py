"""The one error type and its handlers: every error body is {"message", "errorCode"}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class AppError(Exception):
    def __init__(
        self, message: str, error_code: str, status: int = 400, details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.status = status
        self.details = details


def not_found(what: str) -> AppError:
    return AppError(f"{what} not found", "NOT_FOUND", 404)


def forbidden(permission: str) -> AppError:
    return AppError(f"Missing permission {permission}", "FORBIDDEN", 403)


def error_body(message: str, code: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if details is not None:
        body["details"] = details
    return body


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.error_code, exc.details), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = _location(tuple(err.get("loc", ())))
            msg = "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "")
            problems.append({"field": where, "message": msg})
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return JSONResponse(
            error_body(f"Invalid request: {summary}", "VALIDATION_ERROR", problems), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHORIZED"}
        code = codes.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse(error_body(str(exc.detail), code), exc.status_code)
