"""`replicator status` of many tables gives each table's own warehouse figures (it reads the warehouse's
ledger once for all of them): a table loaded twice, one whose last batch the warehouse has not loaded,
and one never synced; checked against the warehouse itself, in DuckDB and in PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from replicator import Replicator

from ..conftest import execute, query, write_project

pytestmark = pytest.mark.integration

NAMES = ["loaded", "behind", "never"]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgresql"])
def test_status_of_many_tables_gives_each_its_own_warehouse_figures(tmp_path: Path, pg_url: str, warehouse: str) -> None:
    for i, name in enumerate(NAMES):
        execute(pg_url, f"CREATE TABLE {name} (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
                f"INSERT INTO {name} SELECT g, g, now() - interval '1 hour' FROM generate_series(1, {30 + 10 * i}) g")
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}" if warehouse == "duckdb" else pg_url
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=url,
                            tables={n: f"source: app\ntable: public.{n}\nprimary_key: [id]\nwatermark: updated_at\n"
                                    for n in NAMES})
    with Replicator.from_path(project) as rep:
        rep.sync("loaded")
        rep.sync("behind")
        execute(pg_url, "UPDATE loaded SET amount = 0, updated_at = now() - interval '30 minutes' WHERE id <= 3",
                "INSERT INTO behind VALUES (1000, 1, now() - interval '30 minutes')")
        rep.sync("loaded")
        rep.extract("behind")  # batch 2 is in the lake; the warehouse still has batch 1

    result = subprocess.run([sys.executable, "-m", "replicator", "--project", str(project), "status", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    status = {row["table"]: row for row in json.loads(result.stdout)}

    if warehouse == "duckdb":
        with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as wh:
            ledger = dict(wh.execute("SELECT table_name, last_loaded_seq FROM raw._replicator_batches").fetchall())
            rows = {n: wh.execute(f"SELECT count(*) FROM raw.{n}").fetchone()[0] for n in ledger}
    else:
        ledger = dict(query(pg_url, "SELECT table_name, last_loaded_seq FROM raw._replicator_batches"))
        rows = {n: query(pg_url, f"SELECT count(*) FROM raw.{n}")[0][0] for n in ledger}
    assert ledger == {"loaded": 2, "behind": 1} and rows == {"loaded": 30, "behind": 40}
    assert {n: (s["last_batch_id"], s["warehouse_batch_id"], s["warehouse_rows"]) for n, s in status.items()} == {
        "loaded": (2, 2, 30), "behind": (2, 1, 40), "never": (None, 0, None)}
