"""The spinner definition's JSON Schema: served by the API and used by the OpenAPI document."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from models.spinner_language.steps import STEP_TYPES
from tests.builders import project, signup


def _resolve(node: Any, document: dict[str, Any]) -> Any:
    """`node` with every local `$ref` replaced by what it points at (the schema is not
    recursive), so schemas from different documents compare by content."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(target, document)
        return {
            k: _resolve(v, document)
            for k, v in node.items()
            # Where definitions are kept, and the discriminator's ref mapping, differ by document;
            # FastAPI leaves out `"default": null` in the OpenAPI document.
            if k not in ("$defs", "mapping") and not (k == "default" and v is None)
        }
    if isinstance(node, list):
        return [_resolve(v, document) for v in node]
    return node


def _definition_property(document: dict[str, Any], body: str) -> Any:
    prop = document["components"]["schemas"][body]["properties"]["definition"]
    typed = [p for p in prop["anyOf"] if p.get("type") != "null"]
    assert len(typed) == 1
    return _resolve(typed[0], document)


def _step_types(schema: dict[str, Any]) -> set[str]:
    steps = schema["properties"]["steps"]["items"]
    assert steps["discriminator"]["propertyName"] == "type"
    types: set[str] = set()
    for variant in steps["oneOf"]:
        kind = variant["properties"]["type"]
        types.update(kind["enum"] if "enum" in kind else [kind["const"]])
    return types


class TestDefinitionSchema:
    async def test_is_served_without_signing_in(self, client: AsyncClient) -> None:
        response = await client.get("/api/v1/spinners/schema")
        assert response.status_code == 200
        schema = response.json()
        assert schema["title"] == "SpinnerDefinition"
        assert _step_types(_resolve(schema, schema)) == set(STEP_TYPES)
        # Every setting carries the description the reference is written from.
        tag = schema["$defs"]["TagStep"]
        assert tag["description"].startswith("Sets the record's disposition")
        assert tag["properties"]["disposition"]["description"].startswith("The record's outcome")

    async def test_spinner_bodies_in_the_openapi_document_use_it(self, client: AsyncClient) -> None:
        document = (await client.get("/api/v1/openapi.json")).json()
        schema = (await client.get("/api/v1/spinners/schema")).json()
        served = _resolve(schema, schema)
        for body in ("SpinnerCreate", "SpinnerUpdate"):
            documented = _definition_property(document, body)
            assert _step_types(documented) == set(STEP_TYPES)
            assert documented == served
        paths = document["paths"]
        create = paths["/api/v1/projects/{project_id}/spinners"]["post"]
        update = paths["/api/v1/spinners/{spinner_id}"]["patch"]
        for operation, body in ((create, "SpinnerCreate"), (update, "SpinnerUpdate")):
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{body}"

    async def test_an_unfinished_draft_is_still_stored_with_located_issues(
        self, client: AsyncClient
    ) -> None:
        # The OpenAPI type documents a full definition, but drafts keep their own validation.
        admin = await signup(client)
        p = await project(client, admin)
        draft = {"steps": [{"id": "t", "type": "tag"}, {"id": "x", "type": "teleport"}]}
        response = await client.post(
            f"/api/v1/projects/{p['id']}/spinners",
            json={"name": "draft", "definition": draft},
            headers=admin.headers,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["draft"] == draft
        errors = {i["path"]: i["message"] for i in body["issues"] if i["level"] == "error"}
        assert any(path.startswith("steps[0]") for path in errors), errors
        assert any(path.startswith("steps[1]") for path in errors), errors
