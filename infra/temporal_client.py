"""The Temporal client used by the API, the CLI and the worker."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from infra.codec import load_codec
from infra.settings import Settings


def data_converter(codec: PayloadCodec) -> DataConverter:
    # Encoded attributes move failure messages and stack traces into a payload, so the codec
    # encrypts them too (the history then shows "Encoded failure").
    return DataConverter(
        payload_codec=codec, failure_converter_class=DefaultFailureConverterWithEncodedAttributes
    )


async def connect_temporal(settings: Settings, *, converter: DataConverter | None = None) -> Client:
    """Connect with the payload codec whose keys are in Vault, unless `converter` says otherwise."""
    if converter is None:
        converter = data_converter(await load_codec(settings))
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls or bool(api_key),
        api_key=api_key,
        data_converter=converter,
    )
