"""The Temporal codec server: `POST /codec/decode` and `/codec/encode` for the Temporal UI and CLI.

Point the Temporal UI (or `temporal … --codec-endpoint`) at `<api>/codec`; it appends /decode.
The caller is a signed-in person: a bearer session token (`--codec-auth "Bearer …"`, or the UI's
"pass access token" behind an https proxy that maps it), or a codec link `<api>/codec/s/<grant>`
from `POST /api/v1/codec/link` for a browser on a UI that sends no header. Decoding needs
`spinners.read` and opens only payloads of the caller's organization's workflows
(api/services/codec_server.py); encoding needs `spinners.run`. CORS for the Temporal UI's origin is `CodecCors` below, scoped to
these paths so the rest of the API stays same-origin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import (
    Allow,
    Principal,
    RequirePermission,
    SessionDep,
    SettingsDep,
    session_principal,
)
from api.errors import AppError, forbidden
from api.services.codec_server import (
    CodecProvider,
    codec_grant,
    decode_for,
    encode_for,
    grant_session_id,
)
from infra.codec import AesGcmCodec
from models.codec import CodecLink, CodecPayloads

PREFIX = "/codec"
router = APIRouter(tags=["codec"])


async def get_codec(request: Request) -> AesGcmCodec:
    provider: CodecProvider = request.app.state.codec
    return await provider()


CodecDep = Annotated[AesGcmCodec, Depends(get_codec)]


class RequireCodecGrant(RequirePermission):
    """The permission check of RequirePermission, for a codec link's grant (the path's `token`,
    a credential like an ingest webhook's, not an object id) instead of a bearer token; the
    session behind the grant must still be live."""

    async def __call__(  # type: ignore[override]  # FastAPI reads this signature, not the base's
        self,
        token: Annotated[str, Path(max_length=100)],
        session: SessionDep,
        settings: SettingsDep,
    ) -> Principal:
        session_id = grant_session_id(settings.secret_key.get_secret_value(), token)
        invalid = AppError("Codec link is not valid", "TOKEN_INVALID", 401)
        if session_id is None:
            raise invalid
        principal = await session_principal(session, session_id, invalid)
        if not principal.can(self.permission):
            raise forbidden(self.permission)
        return principal


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


DECODE_DOC = "Decode payloads of your organization's workflows (as the Temporal UI shows them)."
ENCODE_DOC = (
    "Encrypt payloads (signal or start inputs typed in the Temporal UI) as your organization's."
)


@router.post(f"{PREFIX}/decode", response_model=CodecPayloads, description=DECODE_DOC)
async def decode(
    principal: Annotated[Principal, Allow("spinners.read")],
    body: CodecPayloads,
    session: SessionDep,
    codec: CodecDep,
) -> CodecPayloads:
    return to_body(await decode_for(session, codec, principal.org_id, to_payloads(body)))


@router.post(f"{PREFIX}/encode", response_model=CodecPayloads, description=ENCODE_DOC)
async def encode(
    principal: Annotated[Principal, Allow("spinners.run")],
    body: CodecPayloads,
    codec: CodecDep,
) -> CodecPayloads:
    return to_body(await encode_for(codec, principal.org_id, to_payloads(body)))


@router.post(f"{PREFIX}/s/{{token}}/decode", response_model=CodecPayloads, description=DECODE_DOC)
async def decode_by_link(
    principal: Annotated[Principal, Depends(RequireCodecGrant("spinners.read"))],
    body: CodecPayloads,
    session: SessionDep,
    codec: CodecDep,
) -> CodecPayloads:
    return to_body(await decode_for(session, codec, principal.org_id, to_payloads(body)))


@router.post(f"{PREFIX}/s/{{token}}/encode", response_model=CodecPayloads, description=ENCODE_DOC)
async def encode_by_link(
    principal: Annotated[Principal, Depends(RequireCodecGrant("spinners.run"))],
    body: CodecPayloads,
    codec: CodecDep,
) -> CodecPayloads:
    return to_body(await encode_for(codec, principal.org_id, to_payloads(body)))


@router.post("/api/v1/codec/link", status_code=201)
async def codec_link(
    principal: Annotated[Principal, Allow("spinners.read")], settings: SettingsDep
) -> CodecLink:
    """A codec endpoint for the Temporal UI's "Codec Server" setting, valid while this session is.

    Paste `endpoint` into the Temporal UI (Settings → Codec Server); it decodes as you, with no
    header to configure. Treat it like a password: it opens your organization's payloads.
    """
    grant = codec_grant(settings.secret_key.get_secret_value(), principal.session.id)
    return CodecLink(
        endpoint=f"{settings.public_api_url.rstrip('/')}{PREFIX}/s/{grant}",
        expires_at=principal.session.expires_at,
    )


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
