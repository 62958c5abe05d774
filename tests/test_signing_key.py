"""The signing key of the SMART access tokens: production refuses one that can be guessed,
and says in one line how to make a good one (issue #9, rule 10)."""

from __future__ import annotations

import base64
import secrets
from subprocess import CompletedProcess

import pytest

from kap_outcomes.config import Settings
from kap_outcomes.smart.tokens import SigningKeyError, TokenIssuer

from .conftest import PG_URL
from .processes import free_port, run_cli_together, service_env

# one xdist worker runs the module: its module fixture starts the `serve` processes at once
pytestmark = pytest.mark.xdist_group("test_signing_key")

HOW_TO = "secrets.token_urlsafe"


def _production(key: str) -> Settings:
    return Settings(environment="production", signing_key=key)


@pytest.mark.parametrize(
    "weak",
    [
        "abcdefghijkl" * 3,  # the repeated pattern
        "k" * 32,  # a single repeated character
        "0" * 64,
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",  # a sequence, 36 distinct characters
        "0123456789012345678901234567890123",
        "qwertyuiopasdfghjklzxcvbnm1234567890",  # a keyboard row walk
        "aB3$" * 10,
        "Tr0ub4dor&3" * 3,
        "q3Vt9ZkL0wXa7Rb",  # random but short: 15 characters
    ],
)
def test_production_refuses_a_guessable_signing_key(weak: str) -> None:
    with pytest.raises(SigningKeyError) as refused:
        TokenIssuer.from_settings(_production(weak))
    message = str(refused.value)
    assert "\n" not in message
    assert "KAP_SIGNING_KEY" in message and HOW_TO in message
    assert weak not in message  # the key itself is never repeated back


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_urlsafe(48),  # what the message suggests
        lambda: secrets.token_urlsafe(24),  # 32 characters
        lambda: secrets.token_hex(16),  # 32 hexadecimal digits, 128 bits
        lambda: base64.b64encode(secrets.token_bytes(48)).decode(),  # openssl rand -base64 48
    ],
)
def test_production_accepts_random_keys(make) -> None:
    for _ in range(10):
        key = make()
        assert TokenIssuer.from_settings(_production(key)).signing_key == key.encode()


def test_a_short_key_is_refused_everywhere_a_weak_one_outside_development() -> None:
    with pytest.raises(SigningKeyError, match="KAP_SIGNING_KEY"):
        TokenIssuer.from_settings(Settings(signing_key="too short"))
    with pytest.raises(SigningKeyError, match="KAP_SIGNING_KEY"):
        TokenIssuer.from_settings(Settings(environment="test", signing_key="abcdefghijkl" * 3))
    assert TokenIssuer.from_settings(Settings(signing_key="abcdefghijkl" * 3)).signing_key


SERVED_WEAK = ["abcdefghijkl" * 3, "q3Vt9ZkL"]


@pytest.fixture(scope="module")
def refused_serves(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CompletedProcess[str]]:
    """`serve` in production with each weak key: processes of their own, run at once."""
    runs = []
    for weak in SERVED_WEAK:
        cwd = tmp_path_factory.mktemp("weak-key")
        env = service_env(f"sqlite:///{cwd / 'kap.db'}")
        env |= {"KAP_ENVIRONMENT": "production", "KAP_SIGNING_KEY": weak}
        runs.append((("serve", "--port", str(free_port())), env, cwd))
    return dict(zip(SERVED_WEAK, run_cli_together(runs), strict=True))


@pytest.mark.skipif(bool(PG_URL), reason="a process that stops before any database: once")
@pytest.mark.parametrize("weak", SERVED_WEAK)
def test_serve_refuses_a_weak_key_in_one_line(
    weak: str, refused_serves: dict[str, CompletedProcess[str]]
) -> None:
    done = refused_serves[weak]
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "KAP_SIGNING_KEY" in lines[0] and HOW_TO in lines[0]
    assert "Traceback" not in done.stderr and weak not in done.stderr
