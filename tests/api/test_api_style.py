"""One API style (PRODUCT.md "API style"): every property of every JSON body, and every query
parameter, is camelCase, in the OpenAPI document and on the wire.

Free-form objects (row values, metadata, outcomes, integration config) hold the user's own keys,
and the spinner definition keeps the keys of the spinner language: neither is walked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient

from tests.builders import Account, make_table, project, signup

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
# Properties holding a spinner definition: their schema is the spinner language's own.
SPINNER_DEFINITION = {"definition", "draft"}
JSON_MEDIA = "application/json"


async def _document(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = schema.get("$ref")
    if ref is None:
        return "", schema
    name = ref.rsplit("/", 1)[-1]
    resolved: dict[str, Any] = document["components"]["schemas"][name]
    return name, resolved


def _properties(
    document: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]
) -> Iterator[tuple[str, str]]:
    """(where, property name) of every property reachable from schema."""
    name, schema = _resolve(document, schema)
    if name:
        if name in seen:
            return
        seen.add(name)
        where = name
    for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for part in schema.get(key, []):
            yield from _properties(document, part, where, seen)
    if isinstance(schema.get("items"), dict):
        yield from _properties(document, schema["items"], where, seen)
    for prop, sub in schema.get("properties", {}).items():
        yield where, prop
        if prop not in SPINNER_DEFINITION:
            yield from _properties(document, sub, f"{where}.{prop}", seen)
    # additionalProperties: a free-form object whose keys are the user's, not the API's.


def _body_schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            content = op.get("requestBody", {}).get("content", {})
            if JSON_MEDIA in content:
                yield f"{method.upper()} {path} request", content[JSON_MEDIA]["schema"]
            for status, response in op.get("responses", {}).items():
                for media, body in response.get("content", {}).items():
                    if "json" in media or "event-stream" in media:
                        yield f"{method.upper()} {path} {status}", body.get("schema", {})


def _refs(document: dict[str, Any], node: Any, found: set[str]) -> set[str]:
    """Every component schema reachable from node."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in found:
                found.add(name)
                _refs(document, document["components"]["schemas"][name], found)
        for value in node.values():
            _refs(document, value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(document, value, found)
    return found


def _spinner_language(document: dict[str, Any]) -> set[str]:
    """Component schemas of the spinner definition (reached through a definition property)."""
    found: set[str] = set()
    for schema in document["components"]["schemas"].values():
        for prop, sub in schema.get("properties", {}).items():
            if prop in SPINNER_DEFINITION:
                _refs(document, sub, found)
    return found


def snake_case_properties(document: dict[str, Any]) -> list[str]:
    found: set[str] = set()
    seen: set[str] = set()
    for operation, schema in _body_schemas(document):
        for where, prop in _properties(document, schema, operation, seen):
            if not CAMEL.match(prop):
                found.add(f"{where}: {prop}")
    # Component schemas no route reaches directly still describe the API, except the spinner
    # language's own.
    seen |= _spinner_language(document)
    for name in document["components"]["schemas"]:
        for where, prop in _properties(document, {"$ref": f"#/x/{name}"}, name, seen):
            if not CAMEL.match(prop):
                found.add(f"{where}: {prop}")
    return sorted(found)


def snake_case_query_parameters(document: dict[str, Any]) -> list[str]:
    return sorted(
        f"{method.upper()} {path}: {param['name']}"
        for path, operations in document["paths"].items()
        for method, op in operations.items()
        for param in op.get("parameters", [])
        if param["in"] == "query" and not CAMEL.match(param["name"])
    )


class TestOpenApiStyle:
    async def test_every_body_property_is_camel_case(self, client: AsyncClient) -> None:
        assert snake_case_properties(await _document(client)) == []

    async def test_every_query_parameter_is_camel_case(self, client: AsyncClient) -> None:
        assert snake_case_query_parameters(await _document(client)) == []

    async def test_the_walk_sees_nested_and_component_properties(self, client: AsyncClient) -> None:
        # A positive control: the same walk over a document planted with snake_case names in a
        # nested response model, a request body and an unreferenced component finds all three.
        document = await _document(client)
        schemas = document["components"]["schemas"]
        schemas["RecordChild"]["properties"]["record_id"] = {"type": "integer"}  # camel: keep
        schemas["RunRequest"]["properties"]["row_ids"] = {"type": "array"}  # camel: keep
        orphan = {"table_id": {"type": "string"}}  # camel: keep
        schemas["Orphan"] = {"type": "object", "properties": orphan}
        found = snake_case_properties(document)
        assert "RecordChild: record_id" in found
        assert "RunRequest: row_ids" in found
        assert "Orphan: table_id" in found
        # The spinner definition is the spinner language's: not walked.
        steps = {"step_ids": {"type": "array"}}  # camel: keep
        schemas["SpinnerCreate"]["properties"]["definition"] = {
            "type": "object",
            "properties": steps,
        }
        schemas["SpinnerStep"] = {"type": "object", "properties": steps}
        schemas["SpinnerUpdate"]["properties"]["definition"] = {
            "$ref": "#/components/schemas/SpinnerStep"
        }
        assert not [f for f in snake_case_properties(document) if "step_ids" in f]


@pytest.fixture
async def admin(client: AsyncClient) -> Account:
    return await signup(client)


class TestWireStyle:
    async def test_responses_are_camel_case(self, client: AsyncClient, admin: Account) -> None:
        me = await client.get("/api/v1/auth/me", headers=admin.headers)
        assert me.status_code == 200, me.text
        assert set(me.json()["user"]) == {"id", "fullName", "email", "mustChangePassword"}
        assert "defaultTimezone" in me.json()["organization"]
        p = await project(client, admin)
        table = await make_table(
            client, admin, project_id=p["id"], csv_text="email\na@example.com\n"
        )
        assert {"projectId", "metadataFields", "rowCount", "createdAt"} <= set(table)
        assert not [k for k in table if "_" in k]

    async def test_requests_are_camel_case_and_snake_case_is_refused(
        self, client: AsyncClient, admin: Account
    ) -> None:
        p = await project(client, admin)
        table = await make_table(
            client, admin, project_id=p["id"], csv_text="email\na@example.com\n"
        )
        url = f"/api/v1/data-tables/{table['id']}"
        snake_body = {"metadata_fields": []}  # camel: keep
        snake = await client.patch(url, json=snake_body, headers=admin.headers)
        assert snake.status_code == 422, snake.text
        assert snake.json()["errorCode"] == "VALIDATION_ERROR"
        assert "metadataFields" in snake.json()["message"]
        camel = await client.patch(url, json={"metadataFields": []}, headers=admin.headers)
        assert camel.status_code == 200, camel.text
        assert camel.json()["metadataFields"] == []

    async def test_user_data_keeps_its_own_keys(self, client: AsyncClient, admin: Account) -> None:
        p = await project(client, admin)
        csv_text = "email,first_name\nada@example.com,Ada\n"
        table = await make_table(client, admin, project_id=p["id"], csv_text=csv_text)
        rows = await client.get(f"/api/v1/data-tables/{table['id']}/rows", headers=admin.headers)
        assert rows.status_code == 200, rows.text
        assert rows.json()["data"][0]["data"] == {"email": "ada@example.com", "first_name": "Ada"}
        assert "rowId" in rows.json()["data"][0]
        assert rows.json()["nextAfter"] is None
