"""Admin: integrations (add, test connection), channels (add, sandbox flag) and the
do-not-contact list (add, remove)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api.console.api_client import ApiError, ConsoleApi
from api.console.pages import CsrfChecked, Me, MeDep, form_problem, redirect, render
from models.channel import ChannelKind
from models.fields import Cursor
from models.integration import KINDS

router = APIRouter(prefix="/admin")
Text = Annotated[str, Form(max_length=500)]
OptionalText = Annotated[str, Form(max_length=4096)]
# The credential fields each kind asks for, from the API's own schemas (the API validates them).
CREDENTIALS = {
    kind.value: list(spec.credentials.model_fields) if spec.credentials else []
    for kind, spec in KINDS.items()
}
KIND_LABELS = {kind.value: spec.label for kind, spec in KINDS.items()}
DNC_PAGE = 100


async def _integrations_page(request: Request, me: Me, status: int = 200, **extra: Any) -> Response:
    integrations = (await ConsoleApi(request).get("/integrations"))["data"]
    context = {
        "me": me,
        "integrations": integrations,
        "kinds": KIND_LABELS,
        "credentials": CREDENTIALS,
        "form": {},
        **extra,
    }
    return render(request, "integrations.html", context, status=status)


@router.get("/integrations")
async def integrations_page(request: Request, me: MeDep) -> Response:
    return await _integrations_page(request, me)


@router.post("/integrations", dependencies=[CsrfChecked])
async def add_integration(
    request: Request,
    me: MeDep,
    kind: Annotated[str, Form(max_length=32)],
    name: Annotated[str, Form(max_length=200)],
    base_url: OptionalText = "",
    api_key: OptionalText = "",
    account_sid: OptionalText = "",
    auth_token: OptionalText = "",
) -> Response:
    given = {"api_key": api_key, "account_sid": account_sid, "auth_token": auth_token}
    fields = CREDENTIALS.get(kind, [])
    body: dict[str, Any] = {
        "kind": kind,
        "name": name,
        # Twilio calls its override api_base_url; the others accept base_url.
        "config": {("api_base_url" if kind == "twilio" else "base_url"): base_url}
        if base_url
        else {},
        "credentials": {f: given[f] for f in fields if f in given} if fields else None,
    }
    try:
        await ConsoleApi(request).post("/integrations", body)
    except ApiError as err:
        form = {"kind": kind, "name": name, "base_url": base_url}  # secrets are not sent back
        return await _integrations_page(request, me, err.status, error=form_problem(err), form=form)
    return redirect(request, "/admin/integrations?added=1")


@router.post("/integrations/{integration_id}/test", dependencies=[CsrfChecked])
async def test_integration(request: Request, me: MeDep, integration_id: uuid.UUID) -> Response:
    result = await ConsoleApi(request).post(f"/integrations/{integration_id}/test")
    return await _integrations_page(request, me, tested={"id": str(integration_id), **result})


async def _channels_page(request: Request, me: Me, status: int = 200, **extra: Any) -> Response:
    api = ConsoleApi(request)
    channels = (await api.get("/channels"))["data"]
    integrations = (await api.get("/integrations"))["data"]
    context = {
        "me": me,
        "channels": channels,
        "integrations": integrations,
        "by_id": {i["id"]: i for i in integrations},
        "kinds": [k.value for k in ChannelKind],
        "form": {},
        **extra,
    }
    return render(request, "channels.html", context, status=status)


@router.get("/channels")
async def channels_page(request: Request, me: MeDep) -> Response:
    return await _channels_page(request, me)


@router.post("/channels", dependencies=[CsrfChecked])
async def add_channel(
    request: Request,
    me: MeDep,
    kind: Annotated[str, Form(max_length=16)],
    name: Annotated[str, Form(max_length=200)],
    integration_id: Annotated[uuid.UUID, Form()],
    sender: Annotated[str, Form(max_length=320)],
    sender_name: Annotated[str, Form(max_length=200)] = "",
    sandbox: Annotated[bool, Form()] = False,
) -> Response:
    body = {
        "kind": kind,
        "name": name,
        "integrationId": str(integration_id),
        "sender": sender,
        "senderName": sender_name or None,
        "sandbox": sandbox,
    }
    try:
        await ConsoleApi(request).post("/channels", body)
    except ApiError as err:
        return await _channels_page(request, me, err.status, error=form_problem(err), form=body)
    return redirect(request, "/admin/channels")


@router.post("/channels/{channel_id}/sandbox", dependencies=[CsrfChecked])
async def set_sandbox(
    request: Request, me: MeDep, channel_id: uuid.UUID, sandbox: Annotated[bool, Form()]
) -> Response:
    await ConsoleApi(request).patch(f"/channels/{channel_id}", {"sandbox": sandbox})
    return redirect(request, "/admin/channels")


async def _dnc_page(
    request: Request, me: Me, before: int | None = None, status: int = 200, **extra: Any
) -> Response:
    entries = await ConsoleApi(request).get("/do-not-contact", before=before, limit=DNC_PAGE)
    context = {"me": me, "entries": entries, "before": before, **extra}
    return render(request, "do_not_contact.html", context, status=status)


@router.get("/do-not-contact")
async def dnc_page(
    request: Request, me: MeDep, before: Annotated[Cursor | None, Query()] = None
) -> Response:
    return await _dnc_page(request, me, before)


@router.post("/do-not-contact", dependencies=[CsrfChecked])
async def add_dnc(
    request: Request, me: MeDep, address: Annotated[str, Form(max_length=320)], source: Text = ""
) -> Response:
    try:
        await ConsoleApi(request).post("/do-not-contact", {"address": address, "source": source})
    except ApiError as err:
        return await _dnc_page(
            request, me, status=err.status, error=form_problem(err), address=address
        )
    return redirect(request, "/admin/do-not-contact")


@router.post("/do-not-contact/remove", dependencies=[CsrfChecked])
async def remove_dnc(
    request: Request, me: MeDep, address: Annotated[str, Form(max_length=320)]
) -> Response:
    # A POST body, like the API's, so the address stays out of URLs and access logs.
    try:
        await ConsoleApi(request).post("/do-not-contact/remove", {"address": address})
    except ApiError as err:
        if err.status != 404:
            raise
        return await _dnc_page(request, me, status=404, error="That address is not on the list")
    return redirect(request, "/admin/do-not-contact?removed=1")
