"""Walks every Payload nested in a history event (privacy checks, history recording)."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload nested anywhere in a history event."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = [v for v in value.values() if isinstance(v, Message)]
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        for item in values:
            yield from payloads_in(item)
