"""Typed settings, read once from ``CXGEAR_`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-dev-only"

TASK_QUEUES = ("main", "llm", "messaging", "email", "stt", "http")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CXGEAR_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    state_dir: Path = Path(".cxgear")

    database_url: str = "postgresql+psycopg://cxgear@127.0.0.1:54329/cxgear"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: SecretStr | None = None
    task_queue_prefix: str = "cxgear"

    vault_address: str = "http://127.0.0.1:8200"
    vault_auth: Literal["token", "approle", "kubernetes"] = "token"
    vault_token: SecretStr | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_kubernetes_role: str | None = None
    vault_kubernetes_jwt_path: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    vault_mount: str = "secret"

    public_api_url: str = "http://127.0.0.1:8000"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_ui_port: int = 8233

    # Hosts an `api_call` step may reach although they resolve to non-public addresses.
    http_allowed_hosts: list[str] = []
    # Hosts an integration's base URL may name although they resolve to non-public addresses
    # (an internal LLM gateway, a provider proxy). Separate from the above: allowing a proxy
    # for providers must not let every spinner author's api_call reach it.
    provider_allowed_hosts: list[str] = []
    provider_rate_limits: dict[str, float] = {
        "llm": 50.0,
        "messaging": 20.0,
        "email": 50.0,
        "stt": 10.0,
    }
    job_window: int = 500
    job_batch: int = 50
    job_children_per_run: int = 2000
    # The API process materialises closed records' journeys into PostgreSQL in the background.
    archive_journeys: bool = True

    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    session_ttl: timedelta = timedelta(hours=12)
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 2_147_483_648
    max_columns: int = 200
    # How long an Idempotency-Key on the ingest endpoints replays its first answer.
    ingest_idempotency_ttl: timedelta = timedelta(hours=24)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "production":
            if self.secret_key.get_secret_value() in ("", PLACEHOLDER_SECRET):
                raise ValueError("CXGEAR_SECRET_KEY must be set to a real secret in production")
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("CXGEAR_SECRET_KEY must be at least 32 characters in production")
        return self

    def task_queue(self, name: str) -> str:
        return f"{self.task_queue_prefix}-{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
