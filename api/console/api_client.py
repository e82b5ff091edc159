"""The console speaks to the API in process, as the signed-in user.

Every page and form goes through the API's own routes (over ASGI, no network), so permission
checks, validation, plan limits and error answers are the API's — the console holds no second
copy of any rule. The user's session cookie becomes the bearer token of these calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from fastapi import Request

from api.console.cookies import SESSION_COOKIE

API = "/api/v1"


class ApiError(Exception):
    """An error answer of the API: {"message", "errorCode", "details"} and its status."""

    def __init__(self, status: int, message: str, code: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.details = details


class ConsoleApi:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.token = request.cookies.get(SESSION_COOKIE)

    def _client(self) -> httpx.AsyncClient:
        client = self.request.client
        # The API sees the browser's address and user agent: sign-in throttling and the
        # single-session rule's "same device" check depend on them.
        transport = httpx.ASGITransport(
            app=self.request.app,
            client=(client.host, client.port) if client else ("127.0.0.1", 0),
        )
        headers = {"user-agent": self.request.headers.get("user-agent", "unknown device")}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return httpx.AsyncClient(
            transport=transport, base_url="http://console.internal", headers=headers
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: AsyncIterator[bytes] | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        async with self._client() as client:
            response = await client.request(
                method,
                API + path,
                json=json,
                params={k: v for k, v in (params or {}).items() if v not in (None, "")},
                content=content,
                headers=headers,
                timeout=120,
            )
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise ApiError(
                response.status_code,
                str(body.get("message") or response.reason_phrase),
                str(body.get("errorCode") or "HTTP_ERROR"),
                body.get("details"),
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.call("POST", path, json=body if body is not None else {})

    async def patch(self, path: str, body: Any) -> Any:
        return await self.call("PATCH", path, json=body)

    async def put(self, path: str, body: Any) -> Any:
        return await self.call("PUT", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.call("DELETE", path)
