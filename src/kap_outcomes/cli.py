"""The ``kap-outcomes`` command: serve, migrate, issue tokens, write the OpenAPI document."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer

from kap_outcomes.auth.models import Role
from kap_outcomes.config import Settings, get_settings

app = typer.Typer(
    help="kap-outcomes: outcome tracking for ketamine-assisted psychotherapy.", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Start the HTTP service. On the embedded SQLite default, migrate the file first."""
    import uvicorn

    from kap_outcomes.db import is_sqlite
    from kap_outcomes.migrate import upgrade

    settings = _startable_settings()
    if is_sqlite(settings.database_url):
        upgrade(settings.database_url)
    uvicorn.run(
        "kap_outcomes.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),
    )


def _startable_settings() -> Settings:
    """The settings, or one line on stderr naming what to fix and exit 2 (no traceback, and
    never the offending value: it may be a secret)."""
    from pydantic import ValidationError

    from kap_outcomes.links import require_public_base_url
    from kap_outcomes.smart.tokens import TokenIssuer

    try:
        settings = get_settings()
        TokenIssuer.from_settings(settings)
        require_public_base_url(settings)
    except ValidationError as exc:
        names = ", ".join(
            "KAP_" + str(err["loc"][0]).upper() + f" ({err['msg']})" for err in exc.errors()
        )
        typer.echo(f"kap-outcomes: refusing to start: invalid setting {names}", err=True)
        raise typer.Exit(2) from None
    except RuntimeError as exc:
        typer.echo(f"kap-outcomes: refusing to start: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings


def log_config(level: str) -> dict[str, object]:
    """uvicorn's logging plus ours: one JSON line per request on stdout (``kap_outcomes``)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["kap_json"] = {"format": "%(message)s"}
    config["handlers"]["kap_stdout"] = {
        "class": "logging.StreamHandler",
        "formatter": "kap_json",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["kap_outcomes"] = {
        "handlers": ["kap_stdout"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations to the database of KAP_DATABASE_URL."""
    from kap_outcomes.migrate import upgrade

    upgrade(get_settings().database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Revert migrations down to REVISION (for example ``base``)."""
    from kap_outcomes.migrate import downgrade

    downgrade(get_settings().database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("purge-idempotency-keys")
def db_purge_idempotency_keys() -> None:
    """Delete Idempotency-Key records past their retention (48 hours); run it daily."""
    from kap_outcomes.db import Database, make_engine
    from kap_outcomes.idempotency.service import purge

    db = Database(make_engine(get_settings().database_url))
    removed = db.run_write(purge)
    db.dispose()
    typer.echo(f"removed {removed} lapsed idempotency records")


@token_app.command("create")
def token_create(
    org: Annotated[str, typer.Option(help="Organisation slug; created if new.")],
    role: Annotated[Role, typer.Option(help="Role of the token.")],
    label: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    patient_id: Annotated[str | None, typer.Option(help="The patient of a patient token.")] = None,
) -> None:
    """Create a token and print it once, as the last line."""
    from sqlalchemy import Connection

    from kap_outcomes.auth.service import ensure_organisation, issue_token
    from kap_outcomes.db import Database, is_sqlite, make_engine
    from kap_outcomes.migrate import upgrade
    from kap_outcomes.patients import repository as patients_repository

    if (role is Role.patient) != (patient_id is not None):
        raise typer.BadParameter("--patient-id is required for, and only for, --role patient")
    settings = get_settings()
    if is_sqlite(settings.database_url):
        upgrade(settings.database_url)
    db = Database(make_engine(settings.database_url))

    def create(conn: Connection) -> str:
        org_id = ensure_organisation(conn, org)
        if patient_id is not None and not patients_repository.exists(
            conn, organisation_id=org_id, patient_id=patient_id
        ):
            raise typer.BadParameter("no such patient in this organisation")
        _, secret = issue_token(
            conn, organisation_id=org_id, role=role, label=label, patient_id=patient_id
        )
        return secret

    secret = db.run_write(create)
    db.dispose()
    typer.echo(f"organisation: {org}\nrole: {role.value}\nthe token is shown once; keep it safe:")
    typer.echo(secret)


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the document.")] = Path(
        "openapi/openapi.json"
    ),
) -> None:
    """Write the OpenAPI document of the app (committed as openapi/openapi.json)."""
    from kap_outcomes.openapi_doc import render

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render())
    typer.echo(f"wrote {output}")


if __name__ == "__main__":  # pragma: no cover
    app()
