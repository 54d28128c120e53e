"""SIGKILL a real sync between its lake commit and its Iceberg commits; the next sync publishes every batch
exactly once to both Iceberg tables, and the current-state table equals the source.

Oracles: the source's rows (SQL), the lake's Parquet files counted one by one, and the Iceberg tables'
snapshots and scans through pyiceberg's own SQL catalog.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import sql as pyiceberg_sql

from replicator import Replicator

from ..conftest import query
from .common import create_events, finish, insert_rows, spawn, update_rows, write_project
from .killer import ICEBERG_POINTS

pytestmark = pytest.mark.integration


def _batches(table) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.summary["replicator.batch_id"] for s in table.snapshots()]


@pytest.mark.parametrize("point", ICEBERG_POINTS)
def test_a_sync_killed_before_its_iceberg_commits_is_published_once_by_the_next(
        tmp_path: Path, pg_url: str, point: str) -> None:
    create_events(pg_url)
    insert_rows(pg_url, 1, 600)
    project = write_project(tmp_path / "p", source=pg_url, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}")
    catalog_file = tmp_path / "iceberg.db"
    project.write_text(project.read_text().replace(
        "  file_max_rows: 100\n", f"  file_max_rows: 100\n  iceberg:\n    catalog_uri: 'sqlite:///{catalog_file}'\n"))
    with Replicator.from_path(project) as rep:
        assert rep.sync("events").extract.published.last_batch_id == 1  # type: ignore[union-attr]
    update_rows(pg_url, 1, 200, "v2")
    insert_rows(pg_url, 601, 800)

    code, out = finish({"kill": spawn("-m", "tests.faults.killer", str(project), "events", point)})["kill"]
    assert code == -signal.SIGKILL, out
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{catalog_file}")
    assert _batches(catalog.load_table("lake_current.events")) == ["1"]  # the kill came before it
    assert _batches(catalog.load_table("lake.events")) == (["1"] if point == "before_iceberg" else ["1", "2"])

    code, out = finish({"next": spawn("-m", "replicator", "--project", str(project), "sync", "events")})["next"]
    assert code == 0, out
    for identifier in ("lake.events", "lake_current.events"):
        assert _batches(catalog.load_table(identifier)) == ["1", "2"], identifier  # each batch once
    source = dict(query(pg_url, "SELECT id, payload FROM events"))
    current = catalog.load_table("lake_current.events").scan().to_arrow().select(["id", "payload"]).to_pylist()
    assert len(current) == len(source) == 800 and {r["id"]: r["payload"] for r in current} == source
    lake = tmp_path / "lake" / "events"
    raw = sum(pq.ParquetFile(f).metadata.num_rows for f in lake.rglob("*.parquet")
              if not f.relative_to(lake).parts[0].startswith("_"))
    assert catalog.load_table("lake.events").scan().to_arrow().num_rows == raw == 600 + 400
