"""Settings from the environment (prefix ``KAP_``); no module-level instance."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAP_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default="sqlite:///./kap-outcomes.db",
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg:// in production.",
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    enrollment_code_minutes: int = Field(default=15, ge=1, le=1440)
    rate_limit_per_minute: int = Field(
        default=1200, ge=0, description="Requests per token per minute (per process); 0: off."
    )
    failed_auth_per_minute: int = Field(
        default=20, ge=0, description="Failed authentications per client address; 0: off."
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description=(
            "Reverse proxies whose X-Forwarded-For is believed, a JSON list of CIDRs, e.g. "
            '["10.0.0.0/8"]; empty: the client address is the peer\'s.'
        ),
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API, e.g. ["https://dash.example"].',
    )
    log_level: str = "INFO"
    api_docs: bool | None = Field(
        default=None,
        description=(
            "Serve /docs, /redoc and /openapi.json. Unset: on in development and test, off in "
            "production (the committed openapi/openapi.json documents the API there)."
        ),
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description=(
            "The service's public address; SMART client assertions must name "
            "<public_base_url>/oauth/token as their audience."
        ),
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description=(
            "HS256 key of the SMART access tokens (at least 32 characters). Required in "
            "production; elsewhere each process generates one at start-up, so tokens do not "
            "survive a restart and are not shared between worker processes. Outside "
            "development a guessable key (repeated pattern, sequence, words) is refused; make "
            'one with `python -c "import secrets; print(secrets.token_urlsafe(48))"`.'
        ),
    )

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.environment != "production"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
