"""Database engine and session factory (PostgreSQL through psycopg 3, async)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # Statement errors would otherwise quote their parameters (contact data, outputs) into logs.
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True, hide_parameters=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def libpq_url(url: str) -> str:
    """The same URL without the SQLAlchemy driver suffix, for raw psycopg connections."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
