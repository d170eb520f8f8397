"""The layers are enforced: ``lint-imports`` (run by ``make lint``) fails on an import that
breaks them and names that import.

Each test copies the four packages and the real ``pyproject.toml`` (where the contracts live)
to a temporary directory, adds one import to one module, and runs ``lint-imports`` there, so
removing or loosening a contract in ``pyproject.toml`` makes these tests fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("processor", "retry", "dlq_admin", "schemas")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the source tree and its import-linter configuration."""
    ignore = shutil.ignore_patterns("__pycache__", "_generated", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on ``tree``: its packages, not the installed ones, are analysed."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def add_import(tree: Path, module: str, statement: str) -> None:
    """Append ``statement`` to ``module`` (dotted name) in the copied tree."""
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{statement}\n")


def test_the_tree_as_it_is_keeps_every_contract(tree: Path) -> None:
    """Without an added import the copy passes: the failures below are the added imports."""
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "named"),
    [
        # A lower layer reaching up: retry may not know the worker.
        ("retry.names", "import processor.envelope", "retry.names -> processor.envelope"),
        ("schemas.outcome", "import retry.names", "schemas.outcome -> retry.names"),
        ("processor.envelope", "import dlq_admin.errors", "processor.envelope -> dlq_admin.errors"),
    ],
)
def test_an_import_against_the_layers_fails_and_is_named(
    tree: Path, module: str, statement: str, named: str
) -> None:
    """An upward import breaks the layers contract and the output names the import."""
    add_import(tree, module, statement)
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "Layers: dlq_admin > processor > retry > schemas BROKEN" in result.stdout
    assert named in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "named"),
    [
        ("processor.use_cases", "import httpx", "processor.use_cases -> httpx"),
        ("processor.ports", "import sqlalchemy", "processor.ports -> sqlalchemy"),
        ("retry.policy", "import aio_pika", "retry.policy -> aio_pika"),
        ("processor.circuit", "import fastapi", "processor.circuit -> fastapi"),
    ],
)
def test_an_io_client_imported_by_the_pure_core_fails_and_is_named(
    tree: Path, module: str, statement: str, named: str
) -> None:
    """Use cases, ports and the policy importing a broker, HTTP or SQL client is refused."""
    add_import(tree, module, statement)
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "import no I/O client library BROKEN" in result.stdout
    assert named in result.stdout, result.stdout


def test_an_io_client_reached_through_another_module_is_refused_too(tree: Path) -> None:
    """The pure core may not reach a client indirectly, through a module of its own."""
    add_import(tree, "processor.tracing", "import processor.db")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "processor.db -> sqlalchemy" in result.stdout, result.stdout
