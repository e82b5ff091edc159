"""Typed settings, read once from ``CXGEAR_`` environment variables."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from infra.plans import load_plans

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

    # `cxgear dev` runs an S3-compatible store (SeaweedFS) on this port and the seven after it,
    # and tells the API and worker where it is and its keys (generated, kept in the state dir).
    embedded_s3_port: int = 8333
    embedded_s3_url: str | None = None
    embedded_s3_access_key: str | None = None
    embedded_s3_secret_key: SecretStr | None = None

    public_api_url: str = "http://127.0.0.1:8000"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_ui_port: int = 8233
    # Where people open the Temporal UI (links from the console); default the dev UI.
    temporal_ui_url: str | None = None
    # Browser origins allowed to call the codec server (/codec/*): the Temporal UI's origin(s).
    # Default: the dev UI on temporal_ui_port, by IP and by name.
    temporal_ui_origins: Annotated[list[str], NoDecode] = []

    # Lists and maps also read the shell-friendly forms `a,b` and `llm=50,email=20` (or JSON).
    http_allowed_hosts: Annotated[list[str], NoDecode] = []
    # Hosts an integration's base URL may name although they resolve to non-public addresses
    # (an internal LLM gateway, a provider proxy). Separate from the above: allowing a proxy
    # for providers must not let every spinner author's api_call reach it.
    provider_allowed_hosts: Annotated[list[str], NoDecode] = []
    provider_rate_limits: Annotated[dict[str, float], NoDecode] = {
        "llm": 50.0,
        "messaging": 20.0,
        "email": 50.0,
        "stt": 10.0,
    }
    # How long a provider's message list (Twilio's Messages list, SendGrid's Email Activity) may
    # take to show a send it accepted. A send whose earlier attempt died without an answer is
    # looked up there only once this much time has passed since that attempt, else it could be
    # missed and sent twice.
    send_list_lag: timedelta = timedelta(seconds=60)
    job_window: int = 500
    job_batch: int = 50
    job_children_per_run: int = 2000
    # The API process materialises closed records' journeys into PostgreSQL in the background.
    archive_journeys: bool = True

    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    session_ttl: timedelta = timedelta(hours=12)
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 2_147_483_648
    # A call recording uploaded through the API (POST /projects/{id}/recordings).
    max_recording_bytes: int = 2_147_483_648
    max_columns: int = 200
    # How long an Idempotency-Key on the ingest endpoints replays its first answer.
    ingest_idempotency_ttl: timedelta = timedelta(hours=24)

    # The plan of organizations created by sign-up. A self-hosted install meters nothing unless
    # its operator says so; plan definitions can be changed or added in a YAML/JSON plans file.
    default_plan: str = "unlimited"
    plans_file: Path | None = None

    @field_validator(
        "http_allowed_hosts", "provider_allowed_hosts", "temporal_ui_origins", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("provider_rate_limits", mode="before")
    @classmethod
    def _comma_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("{"):
                return json.loads(value)
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError("expected name=rate pairs separated by commas, e.g. llm=50,sms=5")
            return {name.strip(): rate.strip() for name, rate in pairs}
        return value

    @model_validator(mode="after")
    def _known_default_plan(self) -> Settings:
        plans = load_plans(self.plans_file)
        if self.default_plan not in plans:
            raise ValueError(
                f"CXGEAR_DEFAULT_PLAN '{self.default_plan}' is not a plan; "
                f"choose from {', '.join(plans)}"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "production":
            if self.secret_key.get_secret_value() in ("", PLACEHOLDER_SECRET):
                raise ValueError("CXGEAR_SECRET_KEY must be set to a real secret in production")
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("CXGEAR_SECRET_KEY must be at least 32 characters in production")
        return self

    @property
    def temporal_ui_base(self) -> str:
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def codec_cors_origins(self) -> list[str]:
        if self.temporal_ui_origins:
            return [o.rstrip("/") for o in self.temporal_ui_origins]
        port = self.temporal_ui_port
        dev = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        return dev + ([self.temporal_ui_base] if self.temporal_ui_base not in dev else [])

    def task_queue(self, name: str) -> str:
        return f"{self.task_queue_prefix}-{name}"

    # Throttling (state in PostgreSQL, so every API replica counts together). Sign-in: this many
    # failures of one account (or one client IP) within the window lock it for `login_lockout`,
    # doubling with each lockout up to `login_lockout_max`; lockouts are forgotten after a quiet
    # `login_lockout_memory`.
    login_max_failures: Annotated[int, Field(ge=2)] = 5
    login_ip_max_failures: Annotated[int, Field(ge=2)] = 20
    login_failure_window: timedelta = timedelta(minutes=15)
    login_lockout: timedelta = timedelta(minutes=1)
    login_lockout_max: timedelta = timedelta(hours=1)
    login_lockout_memory: timedelta = timedelta(hours=24)
    # Sign-ups per client IP per window.
    signup_rate_limit: Annotated[int, Field(ge=1)] = 10
    signup_rate_window: timedelta = timedelta(hours=1)
    # Public routes (ingest webhook, key ingest, trigger, record callbacks) take the plan's
    # `PUBLIC_REQUESTS_PER_WINDOW` requests per key per this window.
    public_rate_window: timedelta = timedelta(minutes=1)
    # After a rotation of an organization's record-callback secret the previous one keeps
    # verifying this long, so senders can switch without losing callbacks (0: not at all).
    callback_secret_overlap: Annotated[timedelta, Field(ge=timedelta(0))] = timedelta(hours=24)


@lru_cache
def get_settings() -> Settings:
    return Settings()
