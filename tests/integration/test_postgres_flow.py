"""End to end on PostgreSQL -> S3 lake -> DuckDB: first load, changes, idempotent re-run."""

from __future__ import annotations

from pathlib import Path

from replicator import Replicator
from replicator.lake import list_manifest_seqs

from ..conftest import execute, write_project
from .helpers import (
    assert_no_duplicate_keys,
    duckdb_rows,
    lake_current,
    lake_dataset,
    rows_by_key,
    source_rows,
)

COLUMNS = ["id", "city_id", "price", "status", "created_at", "updated_at"]


def _setup(pg_url: str) -> None:
    execute(
        pg_url,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int NOT NULL, price numeric(12,2), status text,"
        " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX ON rides (updated_at)",
        "INSERT INTO rides SELECT g, g % 7, (g * 1.25)::numeric(12,2), 'requested', now() - (g % 200 || ' minutes')::interval,"
        " now() - interval '1 hour' FROM generate_series(1, 5000) g",
    )


def test_full_then_incremental_then_idempotent(tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str) -> None:
    _setup(pg_url)
    project = write_project(tmp_path, sources={"app": pg_url}, lake=s3_lake, warehouse=duckdb_url, tables={
        "rides": """
            source: app
            table: public.rides
            primary_key: [id]
            watermark: updated_at
            lookback: 1m
            partition_by: created_at
        """})
    rep = Replicator.from_path(project)
    first = rep.sync("rides")
    assert first.extract.rows_committed == 5000 and first.extract.batch_id == 1
    assert first.load.rows_in_table == 5000

    execute(pg_url, "UPDATE rides SET status = 'completed', updated_at = now() WHERE id <= 100",
            "INSERT INTO rides SELECT g, 1, 9.99, 'requested', now(), now() FROM generate_series(5001, 5050) g")
    second = rep.sync("rides")
    assert second.extract.batch_id == 2
    assert second.extract.rows_committed == 150

    expected = source_rows(pg_url, "SELECT * FROM rides", ["id"], COLUMNS)
    current = lake_current(rep, "rides")
    assert_no_duplicate_keys(current, ["id"])
    assert rows_by_key(current, ["id"], COLUMNS) == expected
    assert duckdb_rows(rep, "rides", ["id"], COLUMNS) == expected

    seqs_before = list_manifest_seqs(rep.lake, "rides")
    rows_before = lake_dataset(rep, "rides").num_rows
    third = rep.sync("rides")
    assert not third.extract.committed
    assert list_manifest_seqs(rep.lake, "rides") == seqs_before
    assert lake_dataset(rep, "rides").num_rows == rows_before
    assert duckdb_rows(rep, "rides", ["id"], COLUMNS) == expected


def test_a_lake_can_be_moved(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    """Manifests name files relative to the table folder: a copied lake keeps working at its new place."""
    import shutil

    _setup(pg_url)
    tables = {"rides": "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"}
    first = Replicator.from_path(write_project(tmp_path / "a", sources={"app": pg_url}, lake=str(tmp_path / "lake-a"),
                                               warehouse=duckdb_url, tables=tables))
    first.sync("rides")
    shutil.copytree(tmp_path / "lake-a", tmp_path / "lake-b")
    shutil.rmtree(tmp_path / "lake-a")
    moved = Replicator.from_path(write_project(tmp_path / "b", sources={"app": pg_url}, lake=str(tmp_path / "lake-b"),
                                               warehouse=f"duckdb:///{tmp_path / 'w2.duckdb'}", tables=tables))
    assert moved.read_table("rides").num_rows == 5000
    execute(pg_url, "UPDATE rides SET status = 'x', updated_at = now() + interval '1 second' WHERE id = 1")
    again = moved.sync("rides")
    assert again.extract.batch_id == 2 and again.load.rows_in_table == 5000
