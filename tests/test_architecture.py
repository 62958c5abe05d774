"""Layer rules: clinical/ is pure; routers hold no queries or commits; the import-graph
contracts of ``[tool.importlinter]`` in pyproject.toml are kept."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

SRC = ROOT / "src" / "kap_outcomes"
FORBIDDEN_IN_CLINICAL = {
    "fastapi",
    "sqlmodel",
    "sqlalchemy",
    "pydantic",
    "starlette",
    "logging",
    "kap_outcomes",
}


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_clinical_imports_only_stdlib_and_itself() -> None:
    for path in (SRC / "clinical").glob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if name.startswith("kap_outcomes.clinical"):
                continue
            assert top not in FORBIDDEN_IN_CLINICAL, f"{path.name} imports {name}"


def test_clinical_reads_no_clock() -> None:
    for path in (SRC / "clinical").glob("*.py"):
        text = path.read_text()
        assert "datetime.now" not in text and "time.time" not in text, path.name


def test_outcomes_is_pure_like_clinical() -> None:
    """outcomes/ (section 7) reads no database, no HTTP and no clock; it may use clinical/."""
    for path in (SRC / "outcomes").glob("*.py"):
        for name in _imports(path):
            if name.startswith(("kap_outcomes.clinical", "kap_outcomes.outcomes")):
                continue
            assert name.split(".")[0] not in FORBIDDEN_IN_CLINICAL, f"{path.name} imports {name}"
        text = path.read_text()
        assert "datetime.now" not in text and "time.time" not in text, path.name


def test_routers_hold_no_queries_or_commits() -> None:
    for path in SRC.glob("*/router.py"):
        names = _imports(path)
        assert not any(n.startswith(("sqlalchemy", "sqlmodel")) for n in names), path
        text = path.read_text()
        assert ".commit(" not in text and "HTTPException" not in text, path


def test_import_graph_keeps_the_layer_contracts() -> None:
    """docs/architecture.md's layer rules, checked by import-linter over direct and indirect
    imports: pure clinical/ and outcomes/, infrastructure without domains, domains without the
    HTTP edge, the write side without the read models, the caller named through auth.principal.

    In a process of its own: import-linter reconfigures logging (disabling every other
    logger), which would silence the access log for the tests that follow."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def test_one_alert_level() -> None:
    """clinical.safety.AlertLevel is the only alert level: no other module defines one or a
    rank table of its own, and the API's SafetyLevel is "none" plus its values."""
    from typing import get_args

    from kap_outcomes.clinical.safety import AlertLevel
    from kap_outcomes.signals.models import SafetyLevel

    assert get_args(SafetyLevel.__value__) == ("none", "review", "urgent", "emergency")
    assert set(get_args(SafetyLevel.__value__)) == {"none"} | {level.value for level in AlertLevel}
    for path in SRC.rglob("*.py"):
        if path == SRC / "clinical" / "safety.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets = (
                [node.name]
                if isinstance(node, ast.ClassDef)
                else [t.id for t in node.targets if isinstance(t, ast.Name)]
                if isinstance(node, ast.Assign)
                else [node.target.id]
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                else []
            )
            assert "AlertLevel" not in targets, f"{path} defines an AlertLevel of its own"
        assert '"emergency": 0' not in path.read_text(), f"{path} hard-codes an alert order"
