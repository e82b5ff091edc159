"""The Temporal client used by the API, the CLI and the worker."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.converter import DataConverter

from cxgear.settings import Settings


def data_converter() -> DataConverter:
    return DataConverter.default


async def connect_temporal(settings: Settings, *, converter: DataConverter | None = None) -> Client:
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
        data_converter=converter or data_converter(),
    )
