"""compose.yaml and the Dockerfile, checked without a Docker engine (there is none here).

- the compose file parses, and its parts fit together: the migration runs once before the
  apps, the apps before the proxy, every setting it passes is one the service reads and is
  accepted in production, the proxy is the one trusted proxy, nginx forwards to every app;
- every command it runs is a command of the image's entry point (`kap-outcomes`), with
  options the command takes;
- the Dockerfile keeps the SQLite default in a volume;
- with KAP_TEST_IMAGE_INSTALL=1 (CI), the image's install step runs outside Docker, into a
  new virtual environment, and the installed command migrates a database from elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main
import yaml
from sqlalchemy.engine import make_url

from kap_outcomes.app import create_app
from kap_outcomes.cli import app as cli_app
from kap_outcomes.config import ENV_PREFIX, Settings, get_settings

from .conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
KAP_SERVICES = [name for name, s in SERVICES.items() if s.get("image") == "kap-outcomes:local"]
APPS = [name for name in KAP_SERVICES if SERVICES[name]["command"][0] == "serve"]
EXAMPLE_ENV = dict(
    line.split("=", 1)
    for line in (ROOT / "deploy" / "example.env").read_text().splitlines()
    if line and not line.startswith("#")
)


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} forms."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg or ""
        if op == ":?":
            raise AssertionError(f"{name} is required: {arg}")
        return ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def _environment(service: str, env: dict[str, str]) -> dict[str, str]:
    return {k: _interpolate(str(v), env) for k, v in SERVICES[service]["environment"].items()}


def _filled_env() -> dict[str, str]:
    """deploy/example.env filled in as the comments there say."""
    env = dict(EXAMPLE_ENV)
    env["POSTGRES_PASSWORD"] = secrets.token_urlsafe(24)
    env["KAP_SIGNING_KEY"] = secrets.token_urlsafe(48)
    return env


def test_the_services_of_a_deployment_are_there():
    assert {"postgres", "migrate", "worker", "proxy", "redis"} <= set(SERVICES)
    assert len(APPS) == 2
    assert SERVICES["redis"]["profiles"] == ["redis"]  # optional
    assert SERVICES["migrate"]["command"] == ["db", "upgrade"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["worker"]["command"] == ["worker"]


def test_the_migration_runs_once_before_the_apps_and_the_apps_before_the_proxy():
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in [*APPS, "worker"]:
        assert SERVICES[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert SERVICES["proxy"]["depends_on"] == {a: {"condition": "service_healthy"} for a in APPS}
    assert "healthcheck" in SERVICES["postgres"]
    # the image's health check asks port 8000: only the apps serve it
    for name in ("migrate", "worker"):
        assert SERVICES[name]["healthcheck"] == {"disable": True}
    for name in APPS:
        assert "healthcheck" not in SERVICES[name]
        assert SERVICES[name]["command"][-1] == "8000"


def test_every_command_is_one_the_image_entry_point_takes():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["kap-outcomes"]' in dockerfile
    root = typer.main.get_command(cli_app)
    commands = [SERVICES[name]["command"] for name in KAP_SERVICES]
    default = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert default is not None
    commands.append(yaml.safe_load(default.group(1)))
    for argv in commands:
        command: click.Command = root
        args = list(argv)
        while isinstance(command, click.Group):
            name = args.pop(0)
            sub = command.get_command(click.Context(command), name)
            assert sub is not None, f"`kap-outcomes {' '.join(argv)}`: no command {name!r}"
            command = sub
        # parses its options and arguments without running it
        command.make_context(command.name, args)


def _settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings read from the process environment, as the container's process reads them."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return get_settings()
    finally:
        get_settings.cache_clear()


def test_every_setting_passed_is_read_and_accepted_in_production(monkeypatch):
    env = _filled_env()
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for name in KAP_SERVICES:
        environment = _environment(name, env)
        unknown = {k for k in environment if k.startswith(ENV_PREFIX)} - fields
        assert not unknown, unknown
        settings = _settings_from(environment, monkeypatch)
        assert settings.environment == "production"
        assert settings.worker_embedded is False
        create_app(settings)  # refuses a weak key or the default public address
        url = make_url(settings.database_url)
        pg = SERVICES["postgres"]["environment"]
        assert (url.host, url.port, url.username, url.database) == (
            "postgres", 5432, pg["POSTGRES_USER"], pg["POSTGRES_DB"]
        )  # fmt: skip
        assert url.password == env["POSTGRES_PASSWORD"]
        assert _interpolate(pg["POSTGRES_PASSWORD"], env) == env["POSTGRES_PASSWORD"]


def test_without_the_secrets_compose_refuses_to_start():
    for required in ("POSTGRES_PASSWORD", "KAP_SIGNING_KEY", "KAP_PUBLIC_BASE_URL"):
        env = _filled_env()
        del env[required]
        with pytest.raises(AssertionError, match=required):
            _environment("app-1", env)
        assert required in EXAMPLE_ENV  # and the example env names it


def test_the_proxy_is_the_only_trusted_proxy_and_forwards_to_every_app(monkeypatch):
    trusted = _settings_from(_environment("app-1", _filled_env()), monkeypatch)
    proxy_ip = ipaddress.ip_address(SERVICES["proxy"]["networks"]["backend"]["ipv4_address"])
    subnet = ipaddress.ip_network(COMPOSE["networks"]["backend"]["ipam"]["config"][0]["subnet"])
    assert proxy_ip in subnet
    assert [str(n) for n in trusted.trusted_proxies] == [f"{proxy_ip}/32"]

    mounts = dict(v.split(":")[:2] for v in SERVICES["proxy"]["volumes"])
    for source in mounts:
        assert (ROOT / source).resolve().is_relative_to(ROOT)
    assert mounts["./deploy/nginx.conf"] == "/etc/nginx/nginx.conf"
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream kap \{(.*?)\}", text, re.S)
    assert upstream is not None
    servers = re.findall(r"server (\S+):(\d+)", upstream.group(1))
    assert sorted(servers) == sorted((a, "8000") for a in APPS)
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in text
    for cert in re.findall(r"ssl_certificate(?:_key)?\s+(\S+);", text):
        assert cert.startswith(mounts["./deploy/tls"] + "/")
    # timeouts above the longest long-poll and stream the apps hold open
    settings = trusted
    timeouts = [int(t) for t in re.findall(r"proxy_read_timeout (\d+)s;", text)]
    assert min(timeouts) > settings.events_max_wait_s
    assert max(timeouts) > settings.events_stream_max_s


def test_the_image_keeps_the_sqlite_default_in_a_volume():
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert 'VOLUME ["/data"]' in runtime
    assert "WORKDIR /data" in runtime
    assert Settings.model_fields["database_url"].default == "sqlite:///./kap-outcomes.db"


@pytest.mark.skipif(
    not os.environ.get("KAP_TEST_IMAGE_INSTALL"),
    reason="installs the package into a new venv (minutes); CI sets KAP_TEST_IMAGE_INSTALL=1",
)
def test_the_image_install_step_outside_docker(tmp_path: Path):
    """The build stage's COPY and RUN lines, with /src and /opt/venv under tmp_path."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    build = dockerfile.split("AS build", 1)[1].split("FROM ", 1)[0]
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    for line in build.splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                path = ROOT / source
                target = src / source
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, target)
    run = re.search(r"^RUN (.*?)(?<!\\)$", build.replace("\\\n", " "), re.M | re.S)
    assert run is not None
    script = re.sub(r"\s+", " ", run.group(1)).replace("/opt/venv", str(venv))
    script = script.replace("python -m venv", f"{sys.executable} -m venv")
    subprocess.run(["bash", "-c", script], cwd=src, check=True, timeout=1800)
    exe = venv / "bin" / "kap-outcomes"
    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_")}
    env["KAP_DATABASE_URL"] = f"sqlite:///{elsewhere / 'kap.db'}"
    out = subprocess.run([exe, "db", "upgrade"], env=env, cwd=elsewhere, check=True,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "database at head" in out.stdout
    for argv in [SERVICES[name]["command"] for name in KAP_SERVICES]:
        helped = subprocess.run([exe, *argv[:2], "--help"] if argv[0] == "db" else
                                [exe, argv[0], "--help"], env=env, cwd=elsewhere,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert helped.returncode == 0, helped.stderr


def test_the_commented_redis_line_is_a_setting_that_works():
    """compose.yaml's commented ``KAP_REDIS_URL`` line, once uncommented, names a real setting
    and a value it accepts, pointing at the compose file's own redis service."""
    text = (ROOT / "compose.yaml").read_text()
    (line,) = [ln for ln in text.splitlines() if "KAP_REDIS_URL:" in ln]
    name, _, value = line.strip().lstrip("#").strip().partition(": ")
    assert f"{ENV_PREFIX}redis_url".upper() == name
    settings = Settings(redis_url=value, signing_key="x" * 40)
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value().startswith("redis://redis:6379")
