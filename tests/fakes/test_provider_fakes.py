"""The provider fakes driven through the real SDKs, built by infra.providers' factories."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from python_http_client.exceptions import (  # type: ignore[import-untyped]  # no py.typed
    InternalServerError,
    UnauthorizedError,
)
from sendgrid.helpers.eventwebhook import EventWebhook  # type: ignore[import-untyped]
from sendgrid.helpers.mail import CustomArg, Mail  # type: ignore[import-untyped]
from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped]

from infra.providers import (
    BaseUrlTwilioHttpClient,
    ProviderGuard,
    deepgram_client,
    openai_client,
    sendgrid_client,
    sendgrid_signature_valid,
    twilio_client,
    twilio_signature_valid,
)
from tests.fakes.crm_api import running_crm
from tests.fakes.deepgram_api import running_deepgram
from tests.fakes.openai_api import running_openai
from tests.fakes.sendgrid_api import SIGNATURE_HEADER, TIMESTAMP_HEADER, running_sendgrid
from tests.fakes.signed import FAKE_HOST
from tests.fakes.twilio_api import running_twilio

GUARD = ProviderGuard([FAKE_HOST])

STATUS_URL = "https://cx.example.com/webhooks/twilio/status?tenant=acme"

# --- OpenAI -------------------------------------------------------------------------------------


async def test_openai_chat_completion_echo_scripted_and_responder() -> None:
    with running_openai() as fake:
        assert fake.base_url.endswith("/v1")
        client = await openai_client(
            {"base_url": fake.base_url}, {"api_key": fake.api_key}, guard=GUARD
        )
        messages: list[Any] = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where is my parcel?"},
        ]

        echoed = await client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, temperature=0.2
        )
        assert echoed.choices[0].message.content == "echo: Where is my parcel?"
        assert echoed.choices[0].finish_reason == "stop"
        assert echoed.usage is not None and echoed.usage.total_tokens > 0

        fake.script("scripted one", "scripted two")
        first = await client.chat.completions.create(model="gpt-4o", messages=messages)
        second = await client.chat.completions.create(model="gpt-4o", messages=messages)
        assert [first.choices[0].message.content, second.choices[0].message.content] == [
            "scripted one",
            "scripted two",
        ]

        fake.responder = lambda msgs: "YES" if "parcel" in str(msgs[-1]["content"]) else "NO"
        decided = await client.chat.completions.create(model="gpt-4o", messages=messages)
        assert decided.choices[0].message.content == "YES"

        entries = fake.ledger.snapshot()
        assert len(entries) == 4
        assert entries[0]["model"] == "gpt-4o-mini"
        assert entries[0]["temperature"] == 0.2
        assert entries[0]["messages"] == messages
        assert entries[1]["temperature"] is None
        assert entries[0]["headers"]["authorization"] == f"Bearer {fake.api_key}"

        models = [model.id async for model in client.models.list()]
        assert "gpt-4o-mini" in models


async def test_openai_wrong_key_is_401_and_failures_are_not_recorded() -> None:
    with running_openai() as fake:
        bad = await openai_client({"base_url": fake.base_url}, {"api_key": "sk-wrong"}, guard=GUARD)
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"

        client = await openai_client(
            {"base_url": fake.base_url}, {"api_key": fake.api_key}, guard=GUARD
        )
        fake.fail_next(1, status=429, retry_after=2)
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert limited.value.response.headers["retry-after"] == "2"
        assert len(fake.ledger) == 0
        assert [r["status"] for r in fake.ledger.requests_snapshot()] == [401, 429]


# --- Twilio -------------------------------------------------------------------------------------


async def test_twilio_send_fetch_and_account() -> None:
    with running_twilio() as fake:
        client = await twilio_client({"api_base_url": fake.base_url}, fake.creds, guard=GUARD)
        message = client.messages.create(
            to="+15005550006", from_="+15005550001", body="Hello!", status_callback=STATUS_URL
        )
        assert message.sid.startswith("SM") and message.status == "queued"
        templated = client.messages.create(
            to="+15005550007",
            messaging_service_sid="MG" + "0" * 32,
            content_sid="HX" + "1" * 32,
            content_variables=json.dumps({"1": "Ada"}),
        )
        assert templated.sid != message.sid

        sends = fake.ledger.snapshot()
        assert len(sends) == 2
        assert sends[0]["to"] == "+15005550006"
        assert sends[0]["from"] == "+15005550001"
        assert sends[0]["body"] == "Hello!"
        assert sends[0]["status_callback"] == STATUS_URL
        assert sends[0]["sid"] == message.sid
        assert sends[1]["content_sid"] == "HX" + "1" * 32
        assert sends[1]["content_variables"] == {"1": "Ada"}

        account = client.api.v2010.accounts(fake.account_sid).fetch()
        assert account.sid == fake.account_sid and account.status == "active"

        fake.status_callback(message.sid, "delivered")
        assert client.messages(message.sid).fetch().status == "delivered"


async def test_twilio_bad_auth_and_injected_failures() -> None:
    with running_twilio() as fake:
        bad = await twilio_client(
            fake.config, {"account_sid": fake.account_sid, "auth_token": "nope"}, guard=GUARD
        )
        with pytest.raises(TwilioRestException) as caught:
            bad.api.v2010.accounts(fake.account_sid).fetch()
        assert caught.value.status == 401 and caught.value.code == 20003
        with pytest.raises(TwilioRestException):
            bad.messages.create(to="+15005550006", from_="+15005550001", body="x")

        client = await twilio_client(fake.config, fake.creds, guard=GUARD)
        fake.fail_next(1)
        with pytest.raises(TwilioRestException) as failed:
            client.messages.create(to="+15005550006", from_="+15005550001", body="x")
        assert failed.value.status == 500
        client.messages.create(to="+15005550006", from_="+15005550001", body="x")
        assert len(fake.ledger) == 1


def test_twilio_http_client_rewrites_scheme_host_and_keeps_prefix() -> None:
    http = BaseUrlTwilioHttpClient("http://127.0.0.1:9/proxy/twilio/")
    assert (
        http.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1.json?PageSize=1")
        == "http://127.0.0.1:9/proxy/twilio/2010-04-01/Accounts/AC1.json?PageSize=1"
    )
    assert http.rewrite("https://messaging.dublin.ie1.twilio.com/v1/Services").startswith(
        "http://127.0.0.1:9/proxy/twilio/v1/"
    )


async def test_twilio_status_callback_signature_round_trip() -> None:
    with running_twilio() as fake:
        client = await twilio_client(fake.config, fake.creds, guard=GUARD)
        message = client.messages.create(
            to="+15005550006", from_="+15005550001", body="Hi", status_callback=STATUS_URL
        )
        signed = fake.status_callback(message.sid, "undelivered", error_code="30003")
        assert signed.url == STATUS_URL
        assert signed.form["MessageSid"] == message.sid
        assert signed.form["MessageStatus"] == "undelivered"
        assert signed.form["ErrorCode"] == "30003"
        signature = signed.headers["x-twilio-signature"]
        assert twilio_signature_valid(fake.auth_token, signed.url, signed.form, signature)

        tampered = signed.tampered(MessageStatus="delivered")
        assert not twilio_signature_valid(fake.auth_token, tampered.url, tampered.form, signature)
        assert not twilio_signature_valid("other-token", signed.url, signed.form, signature)
        assert not twilio_signature_valid(
            fake.auth_token, "https://evil.example.com/x", signed.form, signature
        )
        assert not twilio_signature_valid(fake.auth_token, signed.url, signed.form, "")

        inbound = fake.inbound_message(
            "+15005550006", "+15005550001", "STOP", url="https://cx.example.com/webhooks/twilio/in"
        )
        assert inbound.form["Body"] == "STOP" and inbound.form["AccountSid"] == fake.account_sid
        assert twilio_signature_valid(
            fake.auth_token, inbound.url, inbound.form, inbound.headers["x-twilio-signature"]
        )


async def test_twilio_deliver_over_http_through_a_proxy_base() -> None:
    with running_twilio() as fake, running_crm() as receiver:
        client = await twilio_client(fake.config, fake.creds, guard=GUARD)
        message = client.messages.create(
            to="+15005550006", from_="+15005550001", body="Hi", status_callback=STATUS_URL
        )
        signed = fake.status_callback(message.sid, "sent")
        response = fake.deliver(signed, base_override=receiver.base_url)
        assert response.status_code == 200

        (received,) = receiver.ledger.requests
        assert received["path"] == "/webhooks/twilio/status?tenant=acme"
        headers = {k.lower(): v for k, v in received["headers"].items()}
        form = dict(item.split("=", 1) for item in received["body"].split("&"))
        assert form["MessageSid"] == message.sid
        # The receiver rebuilds the public URL (PUBLIC_API_URL), not its own loopback one.
        assert twilio_signature_valid(
            fake.auth_token, STATUS_URL, signed.form, headers["x-twilio-signature"]
        )


# --- SendGrid -----------------------------------------------------------------------------------


def _mail(to: str = "ada@example.com") -> Any:
    mail = Mail(
        from_email="support@cx.example.com",
        to_emails=to,
        subject="Your order",
        plain_text_content="It ships today.",
    )
    mail.custom_arg = CustomArg("cx_send_key", "rec-1:step-2")
    return mail


async def test_sendgrid_send_and_scopes() -> None:
    with running_sendgrid() as fake:
        client = await sendgrid_client(
            {"base_url": fake.base_url}, {"api_key": fake.api_key}, guard=GUARD
        )
        response = client.send(_mail())
        assert response.status_code == 202
        message_id = response.headers["X-Message-Id"]
        (sent,) = fake.ledger.snapshot()
        assert sent["message_id"] == message_id
        assert sent["to"] == ["ada@example.com"]
        assert sent["from"] == "support@cx.example.com"
        assert sent["subject"] == "Your order"
        assert sent["content"] == [{"type": "text/plain", "value": "It ships today."}]
        assert sent["custom_args"] == {"cx_send_key": "rec-1:step-2"}

        scopes = json.loads(client.client.scopes.get().body)
        assert "mail.send" in scopes["scopes"]

        with pytest.raises(UnauthorizedError):
            (await sendgrid_client(fake.config, {"api_key": "SG.bad"}, guard=GUARD)).send(_mail())
        fake.fail_next(1)
        with pytest.raises(InternalServerError):
            client.send(_mail())
        assert len(fake.ledger) == 1


async def test_sendgrid_event_signature_round_trip() -> None:
    with running_sendgrid() as fake:
        client = await sendgrid_client(fake.config, fake.creds, guard=GUARD)
        message_id = client.send(_mail()).headers["X-Message-Id"]
        batch = [
            fake.delivered(message_id),
            fake.open(message_id),
            fake.bounce(message_id),
            fake.unsubscribe(message_id),
        ]
        assert [event["event"] for event in batch] == ["delivered", "open", "bounce", "unsubscribe"]
        assert len({event["sg_event_id"] for event in batch}) == 4
        for event in batch:
            assert event["sg_message_id"].split(".")[0] == message_id
            assert event["email"] == "ada@example.com"
            assert event["cx_send_key"] == "rec-1:step-2"
            assert isinstance(event["timestamp"], int)

        signed = fake.events(batch, url="https://cx.example.com/webhooks/sendgrid")
        assert json.loads(signed.body) == batch
        signature, timestamp = signed.headers[SIGNATURE_HEADER], signed.headers[TIMESTAMP_HEADER]
        assert sendgrid_signature_valid(fake.public_key_b64, signed.body, signature, timestamp)
        # SendGrid's own helper agrees with ours.
        assert EventWebhook(fake.public_key_b64).verify_signature(
            signed.body.decode(), signature, timestamp
        )

        assert not sendgrid_signature_valid(
            fake.public_key_b64, signed.tampered().body, signature, timestamp
        )
        assert not sendgrid_signature_valid(
            fake.public_key_b64, signed.body, signature, str(int(timestamp) - 1)
        )
        assert not sendgrid_signature_valid(
            fake.public_key_b64, signed.body, "not base64!", timestamp
        )
        assert not sendgrid_signature_valid("garbage", signed.body, signature, timestamp)
        with running_sendgrid() as other:
            assert not sendgrid_signature_valid(
                other.public_key_b64, signed.body, signature, timestamp
            )


# --- Deepgram -----------------------------------------------------------------------------------


async def test_deepgram_listen_by_url_and_file() -> None:
    with running_deepgram() as fake:
        client = await deepgram_client(
            {"base_url": fake.base_url}, {"api_key": fake.api_key}, guard=GUARD
        )
        fake.script([(0, "Hello, you are through to support."), (1, "Hi! My router is broken.")])
        result = await client.listen.v1.media.transcribe_url(
            url="https://calls.example.com/rec-1.wav",
            model="nova-3",
            diarize=True,
            punctuate=True,
            utterances=True,
        )
        alternatives = result.results.channels[0].alternatives
        assert alternatives is not None
        assert alternatives[0].transcript == (
            "Hello, you are through to support. Hi! My router is broken."
        )
        words = alternatives[0].words or []
        assert words[0].word == "hello" and words[0].speaker == 0 and words[-1].speaker == 1
        utterances = result.results.utterances or []
        assert [(u.speaker, u.transcript) for u in utterances] == [
            (0, "Hello, you are through to support."),
            (1, "Hi! My router is broken."),
        ]
        (entry,) = fake.ledger.snapshot()
        assert entry["url"] == "https://calls.example.com/rec-1.wav"
        assert entry["params"] == {
            "model": "nova-3",
            "diarize": "true",
            "punctuate": "true",
            "utterances": "true",
        }
        assert entry["headers"]["authorization"] == f"Token {fake.api_key}"

        from_file = await client.listen.v1.media.transcribe_file(request=b"RIFF-fake-audio")
        assert from_file.results.channels[0].alternatives
        assert fake.ledger[1]["audio_bytes"] == len(b"RIFF-fake-audio")

        projects = await client.manage.v1.projects.list()
        assert projects.projects and projects.projects[0].project_id == fake.project_id


async def test_deepgram_wrong_key_is_401() -> None:
    from deepgram.core.api_error import ApiError

    with running_deepgram() as fake:
        client = await deepgram_client(fake.config, {"api_key": "wrong"}, guard=GUARD)
        with pytest.raises(ApiError) as caught:
            await client.listen.v1.media.transcribe_url(url="https://calls.example.com/a.wav")
        assert caught.value.status_code == 401
        assert len(fake.ledger) == 0
