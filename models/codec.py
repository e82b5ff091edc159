"""Bodies of the Temporal codec-server protocol: Payloads in protobuf JSON (bytes as base64)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from models.base import PublicModel

# One history page's payloads; the body size limit bounds them too.
MAX_PAYLOADS = 1000


class CodecPayload(BaseModel):
    # Unknown fields are ignored, not refused: newer Temporal clients add Payload fields.
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = Field(
        default_factory=dict, description="Metadata values, base64 (e.g. `encoding`)."
    )
    data: str = Field(default="", description="The payload's bytes, base64.")


class CodecPayloads(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payloads: list[CodecPayload] = Field(default_factory=list, max_length=MAX_PAYLOADS)


class CodecLink(PublicModel):
    endpoint: str = Field(
        description="Codec endpoint for the Temporal UI; it opens /codec/* as you."
    )
    expires_at: datetime = Field(description="When the session behind the link ends.")
