"""The ``kap-outcomes`` command: serve, migrate, issue tokens, write the OpenAPI document.

It starts light: the arguments are parsed and the settings judged before anything heavy is
imported (the app, the models, Alembic), each command importing what it uses, so that a refused
setting or a wrong argument costs a fraction of a start.
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kap_outcomes.auth.roles import Role
from kap_outcomes.config import ConfigError, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Connection

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
    """Start the HTTP service. On the embedded SQLite default, migrate the file first; a
    server database must be at head already (`kap-outcomes db upgrade`)."""
    settings = get_settings()  # each command judges the settings before its imports
    from kap_outcomes.serving import servable

    servable(settings)  # and serve what create_app refuses, before the app is imported
    from kap_outcomes.migrate import ready_schema

    # and a database it cannot serve from (unreachable, or behind head) is refused here too
    ready_schema(settings.database_url)
    import uvicorn

    from kap_outcomes.app import create_app

    application = create_app(settings)
    collect_from_here()
    uvicorn.run(
        application if workers == 1 else "kap_outcomes.app:create_app",
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),
    )


@app.command()
def worker() -> None:
    """Deliver events (webhooks, signal watch) without serving HTTP.

    For deployments with several app instances on PostgreSQL; any number of workers may run
    at once (they share the work through the database).
    """
    settings = get_settings()
    import asyncio
    import logging.config

    from kap_outcomes.worker import run_forever

    logging.config.dictConfig(log_config(settings.log_level))
    collect_from_here()
    asyncio.run(run_forever(settings))


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
    settings = get_settings()
    from kap_outcomes.migrate import upgrade

    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Revert migrations down to REVISION (for example ``base``)."""
    settings = get_settings()
    from kap_outcomes.migrate import downgrade

    downgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The new file to write the copy to.")],
) -> None:
    """Copy a SQLite database to PATH while the service runs: a consistent snapshot of the
    moment the backup began (SQLite's online backup). For PostgreSQL, use pg_dump."""
    settings = get_settings()
    from kap_outcomes.backup import BackupRefused, backup

    try:
        pages = backup(settings.database_url, path)
    except BackupRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backed up {pages} pages to {path}")


@db_app.command("purge-idempotency-keys")
def db_purge_idempotency_keys() -> None:
    """Delete Idempotency-Key records past their retention (48 hours); run it daily."""
    settings = get_settings()
    from kap_outcomes.db import Database, make_engine
    from kap_outcomes.idempotency.service import purge
    from kap_outcomes.migrate import ready_schema

    ready_schema(settings.database_url)
    db = Database(make_engine(settings.database_url))
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
    if (role is Role.patient) != (patient_id is not None):
        raise typer.BadParameter("--patient-id is required for, and only for, --role patient")
    settings = get_settings()
    from kap_outcomes.auth.service import ensure_organisation, issue_token
    from kap_outcomes.db import Database, make_engine
    from kap_outcomes.migrate import ready_schema
    from kap_outcomes.patients import repository as patients_repository

    ready_schema(settings.database_url)
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


@app.command("signin-link")
def signin_link(
    org: Annotated[str, typer.Option(help="Organisation slug; created if new.")],
    role: Annotated[Role, typer.Option(help="clinician or admin.")] = Role.clinician,
) -> None:
    """Print a one-time sign-in link to the dashboard, as the last line (valid
    KAP_SIGNIN_LINK_MINUTES, 10 by default; single use)."""
    from kap_outcomes.dashboard.sessions import DASHBOARD_ROLES

    if role not in DASHBOARD_ROLES:
        raise typer.BadParameter("the dashboard is for clinicians and admins", param_hint="--role")
    settings = get_settings()
    typer.echo(
        f"organisation: {org}\nrole: {role.value}\nopen this link once, within "
        f"{settings.signin_link_minutes} minutes:"
    )
    typer.echo(_signin_url(org, role))


def _signin_url(org: str, role: Role) -> str:
    settings = get_settings()
    from datetime import timedelta

    from kap_outcomes.dashboard.sessions import create_signin_code
    from kap_outcomes.db import Database, make_engine
    from kap_outcomes.links import public_base
    from kap_outcomes.migrate import ready_schema

    ready_schema(settings.database_url)
    db = Database(make_engine(settings.database_url))
    code = db.run_write(
        lambda conn: create_signin_code(
            conn,
            organisation_slug=org,
            role=role,
            ttl=timedelta(minutes=settings.signin_link_minutes),
        )
    )
    db.dispose()
    return f"{public_base(settings)}/signin?code={code}"


@app.command()
def demo(
    org: Annotated[str, typer.Option(help="Organisation slug; created if new.")] = "demo",
    seed: Annotated[int, typer.Option(help="Same seed, same clinic.")] = 12,
    patients: Annotated[int, typer.Option(min=6, max=20000, help="How many patients.")] = 40,
    today: Annotated[
        str | None,
        typer.Option(help="The clinic's 'today' (YYYY-MM-DD, UTC); default: the real today."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Add to an organisation that already holds data.")
    ] = False,
) -> None:
    """Seed a synthetic demonstration clinic through the service layer; print a sign-in link
    to its dashboard as the last line."""
    settings = get_settings()
    from datetime import date

    from kap_outcomes.db import Database, make_engine
    from kap_outcomes.demo import clinic
    from kap_outcomes.migrate import ready_schema

    ready_schema(settings.database_url)
    collect_from_here()  # the seeding makes garbage in proportion to --patients
    db = Database(make_engine(settings.database_url))
    try:
        summary = clinic.seed(
            db,
            org=org,
            seed=seed,
            patients=patients,
            today=date.fromisoformat(today) if today else None,
            force=force,
        )
    except clinic.NotEmpty as exc:
        db.dispose()
        typer.echo(str(exc), err=True)
        raise SystemExit(1) from None
    db.dispose()
    for line in summary:
        typer.echo(line)
    typer.echo("sign in to the dashboard with this one-time link:")
    typer.echo(_signin_url(org, Role.clinician))


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


def collect_from_here() -> None:
    """End the start-up of a command that runs long or makes garbage in bulk (``serve``,
    ``worker``, ``demo``): what the imports built lives as long as the process, so it is frozen
    (kept out of every later collection) and the cyclic garbage collector is switched back on.

    :func:`main` switches it off first: while hundreds of modules and pydantic models are
    built, nothing is garbage, yet each full collection scans everything built so far (a
    sixth of a start's CPU). A short command (``db upgrade``, ``token create``...) ends
    before garbage could matter, and runs without it. The few objects of the imports that are
    garbage already (about a thousand) stay frozen with the rest.
    """
    gc.freeze()
    gc.enable()


def main() -> None:
    """The ``kap-outcomes`` command. What an operator must fix (a setting, a database behind
    this version) is said in one line on stderr, without a traceback."""
    gc.disable()  # until collect_from_here(), or the end of a short command
    try:
        app()
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise SystemExit(2) from None
    except Exception as exc:
        from kap_outcomes.migrate import SchemaNotReady  # loaded by whoever raised one

        if not isinstance(exc, SchemaNotReady):
            raise
        typer.echo(str(exc), err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
