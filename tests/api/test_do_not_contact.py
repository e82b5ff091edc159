from __future__ import annotations

import uuid

from fastapi import FastAPI
from httpx import AsyncClient

from models.do_not_contact import DoNotContactReason, add_to_do_not_contact, is_do_not_contact
from tests.builders import as_user, invite, signup

DNC = "/api/v1/do-not-contact"


class TestApi:
    async def test_add_is_normalised_and_idempotent(self, client: AsyncClient) -> None:
        admin = await signup(client)
        r = await client.post(DNC, json={"address": "+1 (415) 555-0100"}, headers=admin.headers)
        assert r.status_code == 201, r.text
        assert r.json()["address"] == "+14155550100"
        assert r.json()["reason"] == "manual"
        again = await client.post(DNC, json={"address": "+14155550100"}, headers=admin.headers)
        assert again.status_code == 200
        email = await client.post(
            DNC,
            json={"address": "Someone@Example.com", "source": "asked by phone"},
            headers=admin.headers,
        )
        assert email.json()["address"] == "someone@example.com"
        assert email.json()["source"] == "asked by phone"
        listing = (await client.get(DNC, headers=admin.headers)).json()
        assert listing["count"] == 2
        assert [x["address"] for x in listing["data"]] == ["someone@example.com", "+14155550100"]

    async def test_invalid_addresses_are_422(self, client: AsyncClient) -> None:
        admin = await signup(client)
        for address in ("", "4155550100", "not@", "+1 415"):
            r = await client.post(DNC, json={"address": address}, headers=admin.headers)
            assert r.status_code == 422, (address, r.text)

    async def test_keyset_pages_newest_first(self, client: AsyncClient) -> None:
        admin = await signup(client)
        for i in range(5):
            await client.post(DNC, json={"address": f"p{i}@example.com"}, headers=admin.headers)
        seen: list[str] = []
        before = None
        while True:
            params: dict[str, int] = {"limit": 2}
            if before is not None:
                params["before"] = before
            page = (await client.get(DNC, params=params, headers=admin.headers)).json()
            seen += [x["address"] for x in page["data"]]
            assert page["count"] == 5
            before = page["nextBefore"]
            if before is None:
                break
        assert seen == [f"p{i}@example.com" for i in reversed(range(5))]

    async def test_remove_takes_the_address_in_the_body(self, client: AsyncClient) -> None:
        admin = await signup(client)
        await client.post(DNC, json={"address": "a@example.com"}, headers=admin.headers)
        r = await client.post(
            f"{DNC}/remove", json={"address": "A@Example.com"}, headers=admin.headers
        )
        assert r.status_code == 204, r.text
        assert (await client.get(DNC, headers=admin.headers)).json()["count"] == 0
        again = await client.post(
            f"{DNC}/remove", json={"address": "a@example.com"}, headers=admin.headers
        )
        assert (again.status_code, again.json()["errorCode"]) == (404, "NOT_FOUND")
        await client.post(DNC, json={"address": "+14155550100"}, headers=admin.headers)
        r = await client.post(
            f"{DNC}/remove", json={"address": "+1 415 555 0100"}, headers=admin.headers
        )
        assert r.status_code == 204, r.text
        assert (await client.get(DNC, headers=admin.headers)).json()["count"] == 0

    async def test_remove_refuses_a_bad_address_and_changes_nothing(
        self, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        await client.post(DNC, json={"address": "a@example.com"}, headers=admin.headers)
        for body in ({"address": "not@"}, {}, {"address": "a@example.com", "orgId": "x"}):
            r = await client.post(f"{DNC}/remove", json=body, headers=admin.headers)
            assert (r.status_code, r.json()["errorCode"]) == (422, "VALIDATION_ERROR"), body
        assert (await client.get(DNC, headers=admin.headers)).json()["count"] == 1

    async def test_the_address_is_no_longer_taken_from_the_path(self, client: AsyncClient) -> None:
        admin = await signup(client)
        await client.post(DNC, json={"address": "a@example.com"}, headers=admin.headers)
        r = await client.delete(f"{DNC}/a@example.com", headers=admin.headers)
        assert r.status_code in (404, 405)
        assert (await client.get(DNC, headers=admin.headers)).json()["count"] == 1

    async def test_lists_are_per_organization(self, client: AsyncClient) -> None:
        admin = await signup(client)
        other = await signup(client)
        await client.post(DNC, json={"address": "x@example.com"}, headers=other.headers)
        assert (await client.get(DNC, headers=admin.headers)).json()["count"] == 0
        r = await client.post(
            f"{DNC}/remove", json={"address": "x@example.com"}, headers=admin.headers
        )
        assert r.status_code == 404
        assert (await client.get(DNC, headers=other.headers)).json()["count"] == 1

    async def test_permissions(self, client: AsyncClient) -> None:
        admin = await signup(client)
        supervisor = await as_user(
            client, (await invite(client, admin, roles=["Supervisor"]))["email"]
        )
        assert (await client.get(DNC, headers=supervisor.headers)).status_code == 200
        r = await client.post(DNC, json={"address": "a@example.com"}, headers=supervisor.headers)
        assert r.status_code == 403
        await client.post(DNC, json={"address": "a@example.com"}, headers=admin.headers)
        r = await client.post(
            f"{DNC}/remove", json={"address": "a@example.com"}, headers=supervisor.headers
        )
        assert r.status_code == 403
        assert (await client.get(DNC, headers=admin.headers)).json()["count"] == 1
        agent = await as_user(client, (await invite(client, admin, roles=["Agent"]))["email"])
        assert (await client.get(DNC, headers=agent.headers)).status_code == 403


class TestServiceFunctions:
    async def test_add_and_check_for_steps_and_webhooks(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        admin = await signup(client)
        org_id = uuid.UUID(admin.org_id)
        async with app.state.sessionmaker() as session:
            assert not await is_do_not_contact(session, org_id, "+14155550100")
            added = await add_to_do_not_contact(
                session, org_id, "whatsapp:+1 415 555 0100", DoNotContactReason.stop_keyword, "STOP"
            )
            repeat = await add_to_do_not_contact(
                session, org_id, "+14155550100", DoNotContactReason.stop_keyword, "STOP"
            )
            await session.commit()
            assert (added, repeat) == (True, False)
        async with app.state.engine.connect() as conn:
            assert await is_do_not_contact(conn, org_id, "+1-415-555-0100")
            assert not await is_do_not_contact(conn, org_id, "+14155550101")
            assert not await is_do_not_contact(conn, org_id, "garbage")
        row = (await client.get(DNC, headers=admin.headers)).json()["data"][0]
        assert (row["address"], row["reason"], row["source"]) == (
            "+14155550100",
            "stop_keyword",
            "STOP",
        )
        other = await signup(client)
        async with app.state.engine.connect() as conn:
            assert not await is_do_not_contact(conn, uuid.UUID(other.org_id), "+14155550100")
