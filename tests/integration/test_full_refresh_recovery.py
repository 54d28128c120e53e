"""The documented recovery from an incompatible source change, run as a user runs it, on both warehouses.

sync; `alter column v type int using length(v)` (v was text); `sync` stops naming the change and
changes nothing; `sync --full-refresh` replaces the warehouse table's rows and type in the transaction
of its ledger row; a further incremental sync works. PostgreSQL views on the table survive, unless one
reads the changed column: then the load stops naming the view and loads nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from replicator import Replicator
from replicator.lake import list_manifest_seqs

from ..conftest import execute, query, write_project

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TABLE = "source: app\ntable: public.t\nprimary_key: [id]\nwatermark: updated_at\n"


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the child imports this checkout, whatever the installed copy points at.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "replicator", "--project", str(project), *args],
                          capture_output=True, text=True, cwd=project.parent, env=env, timeout=120)


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def _warehouse(kind: str, project: Path, pg_url: str) -> tuple[str, dict[int, tuple[Any, ...]], int]:
    """The type of column v, the rows (id -> (id, v)) and the ledger's batch, read from the warehouse itself."""
    if kind == "duckdb":
        path = Replicator.from_path(project).project.config.warehouse.url.removeprefix("duckdb:///")
        con = duckdb.connect(path, read_only=True)
        try:
            type_ = con.execute("SELECT data_type FROM information_schema.columns WHERE table_schema = 'raw' "
                                "AND table_name = 't' AND column_name = 'v'").fetchone()[0]  # type: ignore[index]
            rows = con.execute("SELECT id, v FROM raw.t").fetchall()
            seq = con.execute("SELECT last_loaded_seq FROM raw._replicator_batches WHERE table_name = 't'").fetchone()[0]  # type: ignore[index]
        finally:
            con.close()
    else:
        type_ = query(pg_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                              "WHERE attrelid = 'raw.t'::regclass AND attname = 'v'")[0][0]
        rows = query(pg_url, "SELECT id, v FROM raw.t")
        seq = query(pg_url, "SELECT last_loaded_seq FROM raw._replicator_batches WHERE table_name = 't'")[0][0]
    return type_, {r[0]: tuple(r) for r in rows}, seq


def _source(pg_url: str) -> dict[int, tuple[Any, ...]]:
    return {r[0]: tuple(r) for r in query(pg_url, "SELECT id, v FROM public.t")}


def _project(tmp_path: Path, pg_url: str, kind: str) -> Path:
    warehouse = f"duckdb:///{tmp_path / 'warehouse.duckdb'}" if kind == "duckdb" else pg_url
    return write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=warehouse,
                         tables={"t": TABLE})


def _sync_then_break(project: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE TABLE public.t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO public.t (id, v) VALUES (1, 'v1'), (2, 'longer value'), (3, NULL)")
    first = _cli(project, "sync", "t")
    assert first.returncode == 0, _said(first)
    execute(pg_url, "ALTER TABLE public.t ALTER COLUMN v TYPE int USING length(v)",
            "UPDATE public.t SET updated_at = now() + interval '1 second' WHERE id = 1")


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_full_refresh_recovers_from_an_incompatible_change(tmp_path: Path, pg_url: str, kind: str) -> None:
    project = _project(tmp_path, pg_url, kind)
    _sync_then_break(project, pg_url)
    text_type = "VARCHAR" if kind == "duckdb" else "text"
    before = _warehouse(kind, project, pg_url)
    assert before == (text_type, {1: (1, "v1"), 2: (2, "longer value"), 3: (3, None)}, 1)

    stopped = _cli(project, "sync", "t")
    assert stopped.returncode == 1, _said(stopped)
    assert "v string -> int32" in stopped.stderr + stopped.stdout, _said(stopped)
    assert "replicator sync t --full-refresh" in stopped.stderr + stopped.stdout, _said(stopped)
    assert "Traceback" not in stopped.stderr + stopped.stdout, _said(stopped)
    with Replicator.from_path(project) as rep:
        assert list_manifest_seqs(rep.lake, "t") == [1]
    assert _warehouse(kind, project, pg_url) == before

    resynced = _cli(project, "sync", "t", "--full-refresh")
    assert resynced.returncode == 0, _said(resynced)
    int_type = "INTEGER" if kind == "duckdb" else "integer"
    after = _warehouse(kind, project, pg_url)
    assert after == (int_type, _source(pg_url), 2)
    assert after[1] == {1: (1, 2), 2: (2, 12), 3: (3, None)}

    execute(pg_url, "INSERT INTO public.t VALUES (4, 40, now() + interval '2 seconds')",
            "UPDATE public.t SET v = 99, updated_at = now() + interval '2 seconds' WHERE id = 2")
    incremental = _cli(project, "sync", "t")
    assert incremental.returncode == 0, _said(incremental)
    assert _warehouse(kind, project, pg_url) == (int_type, _source(pg_url), 3)


def test_postgres_view_on_the_changed_column_stops_the_load_and_is_named(tmp_path: Path, pg_url: str) -> None:
    project = _project(tmp_path, pg_url, "postgresql")
    _sync_then_break(project, pg_url)
    execute(pg_url, "CREATE VIEW raw.t_values AS SELECT id, v FROM raw.t",
            "CREATE VIEW raw.t_ids AS SELECT id FROM raw.t")
    before = _warehouse("postgresql", project, pg_url)

    blocked = _cli(project, "sync", "t", "--full-refresh")
    assert blocked.returncode == 1, _said(blocked)
    message = blocked.stderr + blocked.stdout
    assert "raw.t_values" in message and "t_ids" not in message, _said(blocked)
    assert "Drop the view(s)" in message and "Traceback" not in message, _said(blocked)
    # The merge and the ledger row rolled back together: the table is as it was.
    assert _warehouse("postgresql", project, pg_url) == before

    execute(pg_url, "DROP VIEW raw.t_values")
    loaded = _cli(project, "sync", "t")  # loads the full batch the lake committed
    assert loaded.returncode == 0, _said(loaded)
    assert _warehouse("postgresql", project, pg_url) == ("integer", _source(pg_url), 2)
    # A view on columns that kept their type is neither dropped nor in the way.
    assert query(pg_url, "SELECT count(*) FROM raw.t_ids") == [(3,)]
