"""Integrations: reusable provider configurations. Credentials live in Vault, never in this table."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    HttpUrl,
    StringConstraints,
    field_validator,
)
from pydantic import Field as PydField
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import (
    Name,
    PublicModel,
    RequestBody,
    created_field,
    id_field,
    jsonb_field,
    org_field,
)


class IntegrationKind(StrEnum):
    openai = "openai"
    mock = "mock"
    twilio = "twilio"
    sendgrid = "sendgrid"
    deepgram = "deepgram"
    mock_stt = "mock_stt"
    s3 = "s3"
    https = "https"


# Kinds that call no provider: shown as mock everywhere.
MOCK_KINDS = frozenset({IntegrationKind.mock, IntegrationKind.mock_stt})


class Integration(SQLModel, table=True):
    __tablename__ = "integration"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_integration_org_name"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_field()
    kind: str = Field(max_length=32)
    name: str = Field(max_length=200)
    config: dict[str, Any] = jsonb_field(dict)
    # The Vault KV path of the credentials (relative to the mount); None for kinds without any.
    credentials_ref: str | None = Field(default=None, max_length=300)
    credential_fields: list[str] = jsonb_field(list)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class IntegrationSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def stored(self) -> dict[str, Any]:
        """The JSON kept in the row (config) or in Vault (credentials)."""
        return self.model_dump(mode="json")


def _url(value: HttpUrl | None) -> str | None:
    return None if value is None else str(value).rstrip("/")


class OpenAIConfig(IntegrationSchema):
    # Any OpenAI-compatible endpoint, ending in /v1.
    base_url: HttpUrl | None = None
    default_model: Text = "gpt-4o-mini"

    def stored(self) -> dict[str, Any]:
        return {"base_url": _url(self.base_url), "default_model": self.default_model}


class MockConfig(IntegrationSchema):
    default_model: Text = "mock"

    def stored(self) -> dict[str, Any]:
        return {"default_model": self.default_model}


class TwilioConfig(IntegrationSchema):
    # Every Twilio request goes to this scheme and host instead (a proxy, a regional edge).
    api_base_url: HttpUrl | None = None

    def stored(self) -> dict[str, Any]:
        return {"api_base_url": _url(self.api_base_url)}


class _HostConfig(IntegrationSchema):
    # Stored as `base_url`, the key infra.providers reads for SendGrid and Deepgram (scheme and
    # host, no /v3 or /v1); `api_base_url` is accepted too, like Twilio's.
    base_url: HttpUrl | None = PydField(
        default=None, validation_alias=AliasChoices("base_url", "api_base_url")
    )

    def stored(self) -> dict[str, Any]:
        return {"base_url": _url(self.base_url)}


class DeepgramConfig(_HostConfig):
    pass


class SendGridConfig(_HostConfig):
    # SendGrid's Event Webhook verification key (base64 DER, ECDSA P-256): public, not a secret.
    event_public_key: str | None = None

    @field_validator("event_public_key")
    @classmethod
    def _ec_public_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            key = load_der_public_key(base64.b64decode(value.strip(), validate=True))
        except (ValueError, binascii.Error):
            raise ValueError("event_public_key is not a base64 DER public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("event_public_key must be an ECDSA public key")
        return value.strip()

    def stored(self) -> dict[str, Any]:
        return {**super().stored(), "event_public_key": self.event_public_key}


class MockSttConfig(IntegrationSchema):
    def stored(self) -> dict[str, Any]:
        return {}


BucketName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"),
]
KeyPrefix = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class S3Config(IntegrationSchema):
    # Any S3-compatible store; None is AWS itself.
    endpoint_url: HttpUrl | None = None
    bucket: BucketName
    # Keys of recordings given without a bucket are read under this prefix.
    prefix: KeyPrefix = ""
    region: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] = "us-east-1"

    def stored(self) -> dict[str, Any]:
        return {
            "endpoint_url": _url(self.endpoint_url),
            "bucket": self.bucket,
            "prefix": self.prefix.strip("/"),
            "region": self.region,
        }


class HttpsStorageConfig(IntegrationSchema):
    def stored(self) -> dict[str, Any]:
        return {}


class ApiKeyCredentials(IntegrationSchema):
    api_key: Secret


class TwilioCredentials(IntegrationSchema):
    account_sid: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
    ]
    auth_token: Secret


class S3Credentials(IntegrationSchema):
    access_key_id: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)
    ]
    secret_access_key: Secret


class KindSpec(BaseModel):
    config: type[IntegrationSchema]
    credentials: type[IntegrationSchema] | None
    label: str


KINDS: dict[IntegrationKind, KindSpec] = {
    IntegrationKind.openai: KindSpec(
        config=OpenAIConfig, credentials=ApiKeyCredentials, label="OpenAI-compatible LLM"
    ),
    IntegrationKind.mock: KindSpec(
        config=MockConfig,
        credentials=None,
        label="Mock LLM: deterministic answers for testing spinners, calls no provider",
    ),
    IntegrationKind.twilio: KindSpec(
        config=TwilioConfig, credentials=TwilioCredentials, label="Twilio (SMS, WhatsApp, voice)"
    ),
    IntegrationKind.sendgrid: KindSpec(
        config=SendGridConfig, credentials=ApiKeyCredentials, label="SendGrid email"
    ),
    IntegrationKind.deepgram: KindSpec(
        config=DeepgramConfig, credentials=ApiKeyCredentials, label="Deepgram speech-to-text"
    ),
    IntegrationKind.mock_stt: KindSpec(
        config=MockSttConfig,
        credentials=None,
        label="Mock speech-to-text: reads the transcript file stored beside each recording "
        "(<name>.txt or <name>.json), calls no provider",
    ),
    IntegrationKind.s3: KindSpec(
        config=S3Config,
        credentials=S3Credentials,
        label="S3-compatible object storage for call recordings",
    ),
    IntegrationKind.https: KindSpec(
        config=HttpsStorageConfig,
        credentials=None,
        label="Recordings at plain HTTPS URLs (the api_call address rules apply)",
    ),
}


class IntegrationCreate(RequestBody):
    kind: IntegrationKind
    name: Name
    config: dict[str, Any] = {}
    # Written to Vault; validated against the kind (see KINDS). Never echoed back.
    credentials: dict[str, Any] | None = None


class IntegrationUpdate(RequestBody):
    name: Name | None = None
    # Replaces the whole config when given.
    config: dict[str, Any] | None = None
    # Replaces the whole credential set when given (rotation writes a new Vault version).
    credentials: dict[str, Any] | None = None


class IntegrationPublic(PublicModel):
    id: uuid.UUID
    kind: str
    name: str
    label: str
    is_mock: bool
    config: dict[str, Any]
    credential_fields: list[str]
    created_at: datetime
    updated_at: datetime


class IntegrationsPublic(PublicModel):
    data: list[IntegrationPublic]
    count: int


class ConnectionTest(PublicModel):
    ok: bool
    detail: str
