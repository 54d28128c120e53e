"""One-way dependencies: the library never imports Dagster (dagster_defs builds on it); load and status never import SQLAlchemy."""

from __future__ import annotations

import ast
import sqlite3
import subprocess
import sys
from pathlib import Path

import replicator
from replicator import Replicator

from ..conftest import write_project

PACKAGE = Path(replicator.__file__).resolve().parent


def _is_dagster(module: str | None) -> bool:
    return module is not None and (module == "dagster" or module.startswith(("dagster.", "dagster_")))


def dagster_imports(path: Path) -> list[str]:
    """`file:line: module` for each import of dagster or a dagster_* package in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{path}:{node.lineno}: {a.name}" for a in node.names if _is_dagster(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_dagster(node.module):
            found.append(f"{path}:{node.lineno}: {node.module}")
    return found


def test_scanner_finds_dagster_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nimport dagster as dg\nfrom dagster_dlt import x\n"
        "def f():\n    from dagster.components import y\nfrom .dagster import z\nimport dagsterish\n"
    )
    assert [line.split(": ", 1)[1] for line in dagster_imports(sample)] == [
        "dagster",
        "dagster_dlt",
        "dagster.components",
    ]


def test_no_module_under_replicator_imports_dagster() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "cli.py" in files and PACKAGE / "lake" / "paths.py" in files
    offenders = [hit for f in files for hit in dagster_imports(f)]
    assert offenders == []


def test_importing_the_library_does_not_load_dagster() -> None:
    code = (
        "import replicator, replicator.cli, replicator.runner, sys; "
        "print(any(m.startswith('dagster') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_commands_that_open_no_source_do_not_import_sqlalchemy(tmp_path: Path) -> None:
    """Loading the warehouse from the lake and `status` never touch a source: they start without SQLAlchemy."""
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as con:
        con.execute("CREATE TABLE rides (id INTEGER PRIMARY KEY, price NUMERIC(12, 2), updated_at TIMESTAMP)")
        con.executemany("INSERT INTO rides VALUES (?, ?, ?)",
                        [(i, f"{i}.25", f"2026-01-0{1 + i % 5} 10:00:00") for i in range(1, 101)])
    project = write_project(
        tmp_path / "project", sources={"app": f"sqlite:///{app}"}, lake=str(tmp_path / "lake"),
        warehouse=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        tables={"rides": "source: app\ntable: rides\nprimary_key: [id]\nwatermark: updated_at\n"},
    )
    with Replicator.from_path(project) as rep:
        assert rep.extract("rides").rows_committed == 100
    code = (
        "import sys; from replicator import Replicator; from replicator.cli import main\n"
        f"rep = Replicator.from_path({str(project)!r})\n"
        "loaded = rep.load('rides').rows_loaded; rep.close()\n"
        f"status = main(['--project', {str(project)!r}, 'status'])\n"
        "print(loaded, status, 'sqlalchemy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "100 0 False"
