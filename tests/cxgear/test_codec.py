"""The AES-GCM payload codec against the session's real OpenBao and Temporal."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Replayer, Worker

# The sandbox re-imports this module to validate CanaryWorkflow; native modules must pass through.
with workflow.unsafe.imports_passed_through():
    import pytest
    from cryptography.exceptions import InvalidTag
    from temporalio.converter import WorkflowSerializationContext

    import infra.codec as codec_module
    from api.services.journey import derive_journey
    from infra.codec import (
        ENCODING,
        KEY_ID_META,
        ORG_META,
        WORKFLOW_META,
        AesGcmCodec,
        CodecKeyError,
        PayloadOwner,
        PayloadTampered,
        load_codec,
        payload_owner,
        read_keyring,
        rotate_codec_key,
    )
    from infra.settings import Settings
    from infra.temporal_client import connect_temporal, data_converter
    from infra.vault import vault_client
    from tests.conftest import make_settings
    from workflows.registry import ALL_WORKFLOWS

HISTORIES = Path(__file__).parent.parent / "workflows" / "histories"


@pytest.fixture(scope="module")
def settings(temporal_server: Any, openbao_server: Any) -> Settings:
    return make_settings(
        temporal_address=temporal_server.address,
        vault_address=openbao_server.address,
        vault_token=openbao_server.token,
    )


@pytest.fixture
def path() -> str:
    """A fresh keyring path per test, so tests never see each other's keys."""
    return f"test/payload-codec-{uuid.uuid4().hex[:10]}"


def json_payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


class TestRoundTrip:
    async def test_values_survive_encode_then_decode(self, settings: Settings, path: str) -> None:
        converter = data_converter(await load_codec(settings, path=path))
        values = [{"name": "Ada", "phone": "+15550100"}, "plain text", 42, None]
        payloads = await converter.encode(values)
        assert all(p.metadata["encoding"] == ENCODING for p in payloads)
        assert all(b"Ada" not in p.data and b"json" not in p.data for p in payloads)
        assert await converter.decode(payloads) == values

    async def test_same_value_seals_differently_each_time(
        self, settings: Settings, path: str
    ) -> None:
        codec = await load_codec(settings, path=path)
        a, b = await codec.encode([json_payload("same"), json_payload("same")])
        assert a.data != b.data  # a fresh nonce per payload
        assert a.metadata[KEY_ID_META] == codec.current_key_id.encode()

    async def test_unencrypted_payloads_pass_through(self, settings: Settings, path: str) -> None:
        codec = await load_codec(settings, path=path)
        plain = json_payload("recorded before the codec")
        assert await codec.decode([plain]) == [plain]

    async def test_tampered_payload_is_rejected(self, settings: Settings, path: str) -> None:
        codec = await load_codec(settings, path=path)
        (sealed,) = await codec.encode([json_payload("x")])
        sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
        with pytest.raises(InvalidTag):
            await codec.decode([sealed])

    async def test_unknown_key_id_is_an_error(self, settings: Settings, path: str) -> None:
        codec = await load_codec(settings, path=path)
        (sealed,) = await codec.encode([json_payload("x")])
        sealed.metadata[KEY_ID_META] = b"no-such-key"
        with pytest.raises(CodecKeyError):
            await codec.decode([sealed])


class TestOwners:
    """Sealed payloads name their owner; the name is authenticated, so it cannot be moved."""

    async def test_workflow_context_stamps_the_workflow(
        self, settings: Settings, path: str
    ) -> None:
        codec = (await load_codec(settings, path=path)).with_context(
            WorkflowSerializationContext(namespace="default", workflow_id="rec-42")
        )
        (sealed,) = await codec.encode([json_payload("x")])
        assert sealed.metadata[WORKFLOW_META] == b"rec-42"
        assert payload_owner(sealed) == PayloadOwner(workflow_id="rec-42")
        assert await codec.decode([sealed]) == [json_payload("x")]

    async def test_organization_copy_stamps_the_organization(
        self, settings: Settings, path: str
    ) -> None:
        base = await load_codec(settings, path=path)
        (sealed,) = await base.for_organization("org-1").encode([json_payload("x")])
        assert payload_owner(sealed) == PayloadOwner(org_id="org-1")
        assert await base.decode([sealed]) == [json_payload("x")]  # any copy opens it

    async def test_moving_a_payload_to_another_owner_breaks_it(
        self, settings: Settings, path: str
    ) -> None:
        codec = await load_codec(settings, path=path)
        (sealed,) = await codec.for_organization("org-1").encode([json_payload("x")])
        for change in (
            {ORG_META: b"org-2"},
            {WORKFLOW_META: b"rec-1"},  # a second owner name
        ):
            moved = Payload()
            moved.CopyFrom(sealed)
            for key, value in change.items():
                moved.metadata[key] = value
            if WORKFLOW_META in change:
                del moved.metadata[ORG_META]
            with pytest.raises(PayloadTampered):
                await codec.decode([moved])
        stripped = Payload()
        stripped.CopyFrom(sealed)
        del stripped.metadata[ORG_META]
        with pytest.raises(PayloadTampered):
            await codec.decode([stripped])

    async def test_payloads_sealed_before_owners_still_open(
        self, settings: Settings, path: str
    ) -> None:
        """What the codec wrote before owners existed: the key id alone as associated data."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        codec = await load_codec(settings, path=path)
        keyring = await asyncio.to_thread(read_keyring, settings, path)
        assert keyring is not None
        key_id = keyring.current
        nonce = b"\x01" * 12
        old = Payload(
            metadata={"encoding": ENCODING, KEY_ID_META: key_id.encode()},
            data=nonce
            + AESGCM(keyring.keys[key_id]).encrypt(
                nonce, json_payload("old").SerializeToString(), key_id.encode()
            ),
        )
        assert payload_owner(old) is None
        assert await codec.decode([old]) == [json_payload("old")]


class TestKeyring:
    async def test_created_once_and_reused(self, settings: Settings, path: str) -> None:
        first = await load_codec(settings, path=path)
        second = await load_codec(settings, path=path)
        assert first.current_key_id == second.current_key_id
        stored = await asyncio.to_thread(read_keyring, settings, path)
        assert stored is not None and set(stored.keys) == {first.current_key_id}

    async def test_old_payload_decodes_after_rotation(self, settings: Settings, path: str) -> None:
        old = await load_codec(settings, path=path)
        old_sealed = await old.encode([json_payload("from before the rotation")])
        new_id = await rotate_codec_key(settings, path=path)
        assert new_id != old.current_key_id
        new = await load_codec(settings, path=path)
        assert new.current_key_id == new_id and new.key_ids() == {old.current_key_id, new_id}
        new_sealed = await new.encode([json_payload("after")])
        assert new_sealed[0].metadata[KEY_ID_META] == new_id.encode()
        assert await new.decode(old_sealed) == [json_payload("from before the rotation")]
        # A process still holding the old keyring fetches the new key when it first meets it.
        assert await old.decode(new_sealed) == [json_payload("after")]
        assert old.current_key_id == new_id

    async def test_concurrent_first_loads_agree_on_one_key(
        self, settings: Settings, path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Both loaders see "no keyring" before either writes, so both try the cas=0 create.
        barrier = threading.Barrier(2)
        read = codec_module._read

        def racing_read(kv: Any, mount: str, p: str) -> Any:
            found = read(kv, mount, p)
            if found is None:
                barrier.wait(timeout=10)
            return found

        monkeypatch.setattr(codec_module, "_read", racing_read)
        a, b = await asyncio.gather(
            load_codec(settings, path=path), load_codec(settings, path=path)
        )
        assert a.current_key_id == b.current_key_id
        kv = vault_client(settings).secrets.kv.v2
        meta = await asyncio.to_thread(
            kv.read_secret_metadata, path=path, mount_point=settings.vault_mount
        )
        assert meta["data"]["current_version"] == 1  # the loser wrote nothing


# --- canary: nothing readable reaches Temporal's history -------------------------------------


@dataclass
class CanaryInput:
    secret: str
    fail: bool


@dataclass
class CanaryResult:
    echoed: str
    activity_error: str


@activity.defn
async def echo_or_fail(args: dict[str, str]) -> dict[str, str]:
    # Dicts in and out, shaped like step activities, so derive_journey can read this history too.
    if args["secret"].startswith("fail:"):
        raise ApplicationError(f"activity failed on {args['secret']}", non_retryable=True)
    return {"step_type": "echo", "outcome": f"echo {args['secret']}"}


@workflow.defn
class CanaryWorkflow:
    @workflow.run
    async def run(self, inp: CanaryInput) -> CanaryResult:
        opts: dict[str, Any] = {
            "start_to_close_timeout": timedelta(seconds=10),
            "retry_policy": RetryPolicy(maximum_attempts=1),
        }
        echoed = await workflow.execute_activity(echo_or_fail, {"secret": inp.secret}, **opts)
        try:
            await workflow.execute_activity(echo_or_fail, {"secret": f"fail:{inp.secret}"}, **opts)
            error = ""
        except ActivityError as exc:
            error = str(exc.cause)
        if inp.fail:
            raise ApplicationError(f"workflow failed on {inp.secret}", non_retryable=True)
        return CanaryResult(echoed["outcome"], error)


def sealed_payloads(history: WorkflowHistory) -> list[Payload]:
    """Every Payload message anywhere in the history's events."""
    found: list[Payload] = []

    def walk(message: Any) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:
                values = list(value.values())
            elif field.is_repeated:
                values = list(value)
            else:
                values = [value]
            for v in values:
                if hasattr(v, "ListFields"):
                    walk(v)

    for event in history.events:
        walk(event)
    return found


async def raw_history(settings: Settings, workflow_id: str) -> WorkflowHistory:
    plain = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    return await plain.get_workflow_handle(workflow_id).fetch_history()


class TestCanary:
    async def test_history_holds_no_plaintext_but_codec_client_reads_it(
        self, settings: Settings
    ) -> None:
        client = await connect_temporal(settings)
        queue = f"codec-{uuid.uuid4().hex[:8]}"
        canary = f"CANARY-{uuid.uuid4().hex}"
        async with Worker(
            client, task_queue=queue, workflows=[CanaryWorkflow], activities=[echo_or_fail]
        ):
            ok_id, bad_id = (
                f"canary-ok-{uuid.uuid4().hex[:8]}",
                f"canary-bad-{uuid.uuid4().hex[:8]}",
            )
            result = await client.execute_workflow(
                CanaryWorkflow.run, CanaryInput(canary, False), id=ok_id, task_queue=queue
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await client.execute_workflow(
                    CanaryWorkflow.run, CanaryInput(canary, True), id=bad_id, task_queue=queue
                )
        # The codec client gets the real values back.
        assert result == CanaryResult(f"echo {canary}", f"activity failed on fail:{canary}")
        assert str(failed.value.cause) == f"workflow failed on {canary}"

        for workflow_id in (ok_id, bad_id):
            history = await raw_history(settings, workflow_id)
            raw = b"".join(event.SerializeToString() for event in history.events)
            assert canary.encode() not in raw
            assert canary not in history.to_json()
            assert b"echo_or_fail" in raw  # the check reads real history bytes
            # Every sealed payload (inputs, results, failures) names this workflow as its owner.
            sealed = [p for p in sealed_payloads(history) if p.metadata.get("encoding") == ENCODING]
            assert len(sealed) >= 4
            assert {payload_owner(p) for p in sealed} == {PayloadOwner(workflow_id=workflow_id)}

            # Failure messages in history are placeholders; the codec client decodes them.
            failed_events = [
                e.activity_task_failed_event_attributes.failure
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
            ]
            assert [f.message for f in failed_events] == ["Encoded failure"]
            error = await client.data_converter.decode_failure(failed_events[0])
            assert str(error) == f"activity failed on fail:{canary}"

            # …and so do journeys, which read failure messages from history.
            journey = await derive_journey(client, workflow_id, record_id=0)
            errors = [step.error for step in journey.steps if step.status == "failed"]
            assert errors == [f"activity failed on fail:{canary}"]
            assert journey.steps[0].outcome == f"echo {canary}"
            assert journey.status == ("failed" if workflow_id == bad_id else "completed")

    async def test_plain_client_cannot_read_results(self, settings: Settings) -> None:
        client = await connect_temporal(settings)
        queue = f"codec-{uuid.uuid4().hex[:8]}"
        workflow_id = f"canary-plain-{uuid.uuid4().hex[:8]}"
        async with Worker(
            client, task_queue=queue, workflows=[CanaryWorkflow], activities=[echo_or_fail]
        ):
            await client.execute_workflow(
                CanaryWorkflow.run, CanaryInput("secret", False), id=workflow_id, task_queue=queue
            )
        plain = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
        )
        with pytest.raises(Exception, match="binary/encrypted"):
            await plain.get_workflow_handle(workflow_id).result()


class TestReplay:
    async def test_histories_recorded_without_codec_replay_with_it(
        self, settings: Settings
    ) -> None:
        codec: AesGcmCodec = await load_codec(settings)
        history = WorkflowHistory.from_json(
            "replay-record", (HISTORIES / "record_plain.json").read_text()
        )
        replayed = await Replayer(
            workflows=ALL_WORKFLOWS, data_converter=data_converter(codec)
        ).replay_workflow(history, raise_on_replay_failure=True)
        assert replayed.replay_failure is None
