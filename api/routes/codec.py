"""The Temporal codec server: `POST /codec/decode` and `/codec/encode` for the Temporal UI and CLI.

Point the Temporal UI (or `temporal … --codec-endpoint`) at `<api>/codec`; it appends /decode.
Decoding needs `spinners.read` and opens only payloads of the caller's organization's workflows
(api/services/codec_server.py). CORS for the Temporal UI's origin is `CodecCors` below, scoped to
these paths so the rest of the API stays same-origin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import Allow, Principal, SessionDep
from api.errors import AppError
from api.services.codec_server import CodecProvider, decode_for, encode_for
from infra.codec import AesGcmCodec
from models.codec import CodecPayloads

PREFIX = "/codec"
router = APIRouter(prefix=PREFIX, tags=["codec"])


async def get_codec(request: Request) -> AesGcmCodec:
    provider: CodecProvider = request.app.state.codec
    return await provider()


CodecDep = Annotated[AesGcmCodec, Depends(get_codec)]


def to_payloads(body: CodecPayloads) -> list[Payload]:
    try:
        parsed = json_format.ParseDict(body.model_dump(), Payloads(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise AppError(
            "Payloads must be protobuf JSON: metadata values and data in base64",
            "PAYLOAD_INVALID",
            400,
        ) from exc
    return list(parsed.payloads)


def to_body(payloads: list[Payload]) -> CodecPayloads:
    as_json = json_format.MessageToDict(Payloads(payloads=payloads))
    return CodecPayloads.model_validate({"payloads": as_json.get("payloads", [])})


@router.post("/decode", response_model=CodecPayloads)
async def decode(
    principal: Annotated[Principal, Allow("spinners.read")],
    body: CodecPayloads,
    session: SessionDep,
    codec: CodecDep,
) -> CodecPayloads:
    """Decode payloads of your organization's workflows (as the Temporal UI shows them)."""
    return to_body(await decode_for(session, codec, principal.org_id, to_payloads(body)))


@router.post("/encode", response_model=CodecPayloads)
async def encode(
    principal: Annotated[Principal, Allow("spinners.run")],
    body: CodecPayloads,
    codec: CodecDep,
) -> CodecPayloads:
    """Encrypt payloads (signal or start inputs typed in the Temporal UI) as your organization's."""
    return to_body(await encode_for(codec, principal.org_id, to_payloads(body)))


class CodecCors:
    """CORS for the Temporal UI's origin(s) on /codec/* only; other paths pass through untouched.

    Credentials are allowed so the UI's "include cross-origin credentials" option can carry a
    browser session; `Authorization` carries a session token ("pass access token" or the CLI).
    """

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
