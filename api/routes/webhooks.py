"""Provider webhooks (Twilio status and inbound messages, SendGrid events): public routes whose
authentication is the provider's signature, checked in api/services/webhooks.py."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response

from api.deps import PublicRoute, SecretStoreDep, SessionDep, SettingsDep, TemporalDep
from api.services import webhooks
from api.services.webhooks import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    TWILIO_SIGNATURE,
    TwilioRequest,
    parse_form,
    public_url,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
TWILIO_HANDLERS = {"status": webhooks.twilio_status, "inbound": webhooks.twilio_inbound}


@router.post("/twilio/{kind}", dependencies=[Depends(PublicRoute())])
async def twilio_webhook(
    kind: Literal["status", "inbound"],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    secrets: SecretStoreDep,
) -> Response:
    """Twilio's message status callbacks (`status`) and inbound messages (`inbound`)."""
    signed = TwilioRequest(
        # Behind a TLS-terminating proxy request.url is http://internal…; Twilio signed the
        # public URL.
        url=public_url(settings.public_api_url, request.url.path, request.url.query),
        form=parse_form(await request.body()),
        signature=request.headers.get(TWILIO_SIGNATURE, ""),
    )
    await TWILIO_HANDLERS[kind](session, temporal, secrets, signed)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/sendgrid/events", dependencies=[Depends(PublicRoute())])
async def sendgrid_events(
    request: Request, session: SessionDep, temporal: TemporalDep
) -> dict[str, Any]:
    counts = await webhooks.sendgrid_events(
        session,
        temporal,
        body=await request.body(),
        signature=request.headers.get(SENDGRID_SIGNATURE, ""),
        timestamp=request.headers.get(SENDGRID_TIMESTAMP, ""),
    )
    return {"ok": True, **counts}
