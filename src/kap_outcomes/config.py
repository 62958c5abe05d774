"""Settings from the environment (prefix ``KAP_``); no module-level instance."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal, get_origin

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

ENV_PREFIX = "KAP_"


class ConfigError(RuntimeError):
    """Settings that cannot work, as one line per bad variable (``KAP_NAME: what is expected``).

    ``get_settings()`` turns every refused setting into one (a ValueError raised by a field
    validator names its field; a model validator's message must name its variables itself);
    code that refuses a setting later, at start-up, raises it directly. The command line prints
    the lines and exits 2, without a traceback.
    """

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


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
    signin_link_minutes: int = Field(
        default=10, ge=1, le=1440, description="Lifetime of a dashboard sign-in link."
    )
    dashboard_session_minutes: int = Field(
        default=720,
        ge=5,
        le=10080,
        description="A dashboard session ends this long after sign-in (12 hours by default).",
    )
    rate_limit_per_minute: int = Field(
        default=1200,
        ge=0,
        description=(
            "Requests per token per minute (per process, or shared with KAP_REDIS_URL); 0: off."
        ),
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
    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "Redis holding the rate limit and the failed-authentication throttle, shared by "
            "every instance (redis:// or rediss://); unset: each process counts alone."
        ),
        examples=["redis://127.0.0.1:6379/0"],
    )
    redis_key_prefix: str = Field(
        default="kap-outcomes",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description=(
            "Prefix of this deployment's keys in Redis: deployments (or test runs) sharing "
            "one Redis keep their counts apart with different prefixes."
        ),
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=32,
        description=(
            "Bearer token that GET /metrics requires (32+ characters). Unset: /metrics is open "
            "in development and test and not served in production."
        ),
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API, e.g. ["https://dash.example"].',
        examples=[["https://dash.example"]],
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
            "HS256 key of the SMART access tokens (at least 32 characters). Required outside "
            "development; in development each process generates one at start-up, so tokens do "
            "not survive a restart and are not shared between worker processes. Outside "
            "development a guessable key (repeated pattern, sequence, words) is refused; make "
            'one with `python -c "import secrets; print(secrets.token_urlsafe(48))"`.'
        ),
    )

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.environment != "production"

    # --- events and webhooks ---
    worker_embedded: bool = Field(
        default=True,
        description=(
            "Run the event delivery worker inside `serve`. Turn off where separate "
            "`kap-outcomes worker` processes deliver (several app instances on PostgreSQL)."
        ),
    )
    worker_poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    events_max_wait_s: float = Field(
        default=30, ge=0, le=30, description="Longest long-poll of GET /v1/events."
    )
    events_stream_max_s: float = Field(
        default=300,
        gt=0,
        description="An event stream closes after this long; clients resume with Last-Event-ID.",
    )
    events_retention_days: float = Field(
        default=30,
        ge=1,
        le=3650,
        description=(
            "Events older than this are deleted by the worker, with the history of their "
            "webhook deliveries, once every consumer has read them and none of their "
            "deliveries is still pending."
        ),
    )
    webhook_allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description=(
            "CIDRs webhook deliveries may reach although they are loopback, private, "
            'link-local or metadata addresses, e.g. ["10.20.0.0/16"]. Empty by default.'
        ),
    )
    webhook_timeout_s: float = Field(default=10, gt=0, le=60)
    webhook_retry_schedule_s: list[float] = Field(
        default_factory=lambda: (
            [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0] + [28800.0] * 3
        ),
        min_length=1,
        description=(
            "Waits before each retry (jittered ±20 %); once exhausted (about 31 h by default) "
            "the delivery has failed and the endpoint is disabled."
        ),
    )
    webhook_lease_s: float = Field(
        default=60,
        gt=0,
        description=(
            "How long a worker owns a claimed delivery (longer than webhook_timeout_s); "
            "a dead worker's claims pass on after it."
        ),
    )
    webhook_concurrency: int = Field(default=16, ge=1, le=256)

    # --- SMART backend clients whose keys are at a jwks_uri ---
    jwks_allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description=(
            "CIDRs a client's jwks_uri may lead to although they are loopback, private, "
            'link-local or metadata addresses, e.g. ["10.20.0.0/16"]. Empty by default; '
            "separate from the webhooks' list."
        ),
    )
    jwks_timeout_s: float = Field(default=5, gt=0, le=30)
    jwks_cache_min_s: float = Field(
        default=60,
        ge=0,
        le=3600,
        description="A fetched key set is kept at least this long, whatever its max-age says.",
    )
    jwks_cache_max_s: float = Field(
        default=86400,
        gt=0,
        le=604800,
        description="… and at most this long (without max-age: 300 s within the bounds).",
    )
    jwks_refresh_interval_s: float = Field(
        default=10,
        ge=0,
        le=3600,
        description=(
            "At most one fetch per client this often: an assertion naming an unknown kid "
            "fetches the set again only when the last fetch is older."
        ),
    )

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^rediss?://[^\s/]+", value.get_secret_value()):
            raise ValueError("expected redis://host:port/db or rediss://host:port/db")
        return value

    # --- bulk export ($export) ---
    export_dir: Path = Field(
        default=Path("kap-exports"),
        description=(
            "Where bulk export files are written (one folder per export), relative to the "
            "working directory unless absolute. Every process that serves or runs exports "
            "must see the same folder (a shared volume on several hosts)."
        ),
    )
    export_retention_s: float = Field(
        default=86400,
        gt=0,
        description="How long a finished export and its files are kept before deletion.",
    )
    export_lease_s: float = Field(
        default=120,
        ge=10,
        description=(
            "How long a worker owns a running export between two heartbeats (every few "
            "seconds); a dead worker's export is claimed again after it."
        ),
    )

    @field_validator("database_url")
    @classmethod
    def _a_database_we_speak(cls, value: str) -> str:
        # here, not at the top: a command refused for another setting never loads SQLAlchemy
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            backend = None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                "expected sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/db"
            )
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of the environment; a refused one raises ConfigError (one line each)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(*_validation_lines(exc)) from None
    except SettingsError as exc:  # a list or object setting that is not JSON
        raise ConfigError(_parse_error_line(exc)) from None


def variable(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _expected_form(field: str) -> str:
    """``; expected a JSON list, e.g. [...]``: the kind of a list or object setting and the
    first of a setting's ``examples`` (give one to any setting with a form to show)."""
    info = Settings.model_fields.get(field)
    if info is None:
        return ""
    origin = get_origin(info.annotation)
    kind = {list: " a JSON list", dict: " a JSON object"}.get(origin, "") if origin else ""
    if not info.examples:
        return f"; expected{kind}" if kind else ""
    example = info.examples[0]
    shown = example if isinstance(example, str) else json.dumps(example)
    return f"; expected{kind}{',' if kind else ''} e.g. {shown}"


def _validation_lines(exc: ValidationError) -> list[str]:
    """One line per variable; the value itself is never shown (it may be a secret)."""
    lines: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "too_short":  # a secret's length: the bound, not the value's
            message = f"should have at least {error.get('ctx', {}).get('min_length')} characters"
        if not error["loc"]:  # a model validator: its message names the variables
            lines.setdefault(message, message)
            continue
        field = str(error["loc"][0])
        lines.setdefault(field, f"{variable(field)}: {message}{_expected_form(field)}")
    return list(lines.values())


def _parse_error_line(exc: SettingsError) -> str:
    match = re.search(r'field "(\w+)"', str(exc))
    if match is None:
        return str(exc)
    field = match.group(1)
    return f"{variable(field)}: not valid JSON{_expected_form(field)}"
