"""Organization API keys for machines: shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import col, select

from api.deps import Allow, Principal, SessionDep, SettingsDep
from api.errors import not_found
from api.services.plan_limits import ensure_capacity
from infra.security import new_api_key, token_hash
from models.api_key import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeysPublic
from models.plan import Meter

router = APIRouter(prefix="/api-keys", tags=["api keys"])
Manage = Annotated[Principal, Allow("api_keys.manage")]


async def key_in_org(key_id: uuid.UUID, principal: Manage, session: SessionDep) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.org_id != principal.org_id:
        raise not_found("API key")
    return key


KeyDep = Annotated[ApiKey, Depends(key_in_org)]


@router.get("")
async def list_keys(principal: Manage, session: SessionDep) -> ApiKeysPublic:
    keys = (
        await session.exec(
            select(ApiKey).where(ApiKey.org_id == principal.org_id).order_by(col(ApiKey.created_at))
        )
    ).all()
    return ApiKeysPublic(data=[ApiKeyPublic.model_validate(k) for k in keys], count=len(keys))


@router.post("", status_code=201)
async def create_key(
    body: ApiKeyCreate, principal: Manage, session: SessionDep, settings: SettingsDep
) -> ApiKeyCreated:
    await ensure_capacity(session, principal.org, Meter.api_keys)
    secret, prefix = new_api_key()
    key = ApiKey(
        org_id=principal.org_id,
        name=body.name,
        prefix=prefix,
        key_hash=token_hash(settings.secret_key.get_secret_value(), secret),
        scopes=sorted({s.value for s in body.scopes}),
        created_by=principal.user.id,
    )
    session.add(key)
    await session.flush()
    return ApiKeyCreated(**ApiKeyPublic.model_validate(key).model_dump(), secret=secret)


@router.get("/{key_id}")
async def get_key(key: KeyDep) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(key)


@router.delete("/{key_id}")
async def revoke_key(key: KeyDep, session: SessionDep) -> ApiKeyPublic:
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.add(key)
    return ApiKeyPublic.model_validate(key)
