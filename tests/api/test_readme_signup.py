"""The README's first API step works as written (it once used a reserved domain the API refuses)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from httpx import AsyncClient

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_readme_signup_example_is_accepted(client: AsyncClient) -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"curl -s localhost:8000(/api/v1/auth/signup).*?-d '(\{.*?\})'", text, re.S)
    assert match, "the README's sign-up command is missing"
    path, body = match.group(1), json.loads(match.group(2))
    r = await client.post(path, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["token"]
