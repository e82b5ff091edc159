"""Per-organization unique names (integrations, channels): a friendly check, then the index."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AppError


@dataclass(frozen=True)
class UniqueName:
    model: Any  # a SQLModel table with id, org_id and name
    label: str  # "A channel", "An integration"
    index: str  # the unique index that settles races

    def taken(self, name: str) -> AppError:
        return AppError(f"{self.label} named '{name}' already exists", "NAME_TAKEN", 409)

    async def ensure_free(
        self, session: AsyncSession, org_id: uuid.UUID, name: str, except_id: uuid.UUID | None
    ) -> None:
        m = self.model
        clash = (
            await session.exec(
                select(m.id).where(m.org_id == org_id, m.name == name, m.id != except_id)
            )
        ).first()
        if clash is not None:
            raise self.taken(name)

    async def flush(self, session: AsyncSession, name: str) -> None:
        try:
            await session.flush()
        except IntegrityError as exc:
            # Two requests raced past ensure_free(); the unique index decided.
            if self.index in str(exc.orig):
                raise self.taken(name) from None
            raise
