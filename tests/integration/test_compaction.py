"""`replicator compact`: fewer files, the same current state and time travel inside the retention."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from replicator import LakeError, Replicator

from ..conftest import execute, write_project
from .helpers import assert_no_duplicate_keys, duckdb_rows, lake_current, rows_by_key, source_rows

COLS = ["id", "state"]


@pytest.mark.parametrize("partition", ["", "partition_by: created_at\n"])
def test_compaction_keeps_every_state_inside_retention(partition: str, tmp_path: Path, pg_url: str, s3_lake: str,
                                                        duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE orders (id int PRIMARY KEY, state text, created_at timestamptz NOT NULL, "
                    "updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO orders SELECT g, 'new', '2026-01-01'::timestamptz + (g % 3 || ' days')::interval FROM generate_series(1, 60) g")
    path = write_project(tmp_path, sources={"app": pg_url}, lake=s3_lake, warehouse=duckdb_url, tables={
        "orders": "source: app\ntable: orders\nprimary_key: [id]\nwatermark: updated_at\n" + partition})
    rep = Replicator.from_path(path)
    rep.sync("orders")
    for i in range(2, 6):
        execute(pg_url, f"UPDATE orders SET state = 'v{i}', updated_at = now() + interval '{i} seconds' WHERE id % {i} = 0",
                f"INSERT INTO orders VALUES ({100 + i}, 'new', '2026-01-02', now() + interval '{i} seconds')")
        rep.sync("orders")
    before = {k: rows_by_key(rep.read_table("orders", as_of=k), ["id"], COLS) for k in (1, 3, 5)}
    files_before = len(ds.dataset(f"{rep.lake.root}/orders", filesystem=rep.lake.fs, format="parquet",
                                  partitioning="hive").files)

    result = rep.compact("orders", dt.timedelta(days=7))
    assert result.batch_id == 6 and result.rows_after == 64 and result.rows_before > 64
    visible = ds.dataset(f"{rep.lake.root}/orders", filesystem=rep.lake.fs, format="parquet", partitioning="hive")
    assert len(visible.files) < files_before
    assert visible.count_rows() == 64  # superseded row versions left the Hive layout
    for k, state in before.items():
        assert rows_by_key(rep.read_table("orders", as_of=k), ["id"], COLS) == state
    expected = source_rows(pg_url, "SELECT id, state FROM orders", ["id"], COLS)
    current = lake_current(rep, "orders")
    assert_no_duplicate_keys(current, ["id"])
    assert rows_by_key(current, ["id"], COLS) == expected == before[5]
    assert rows_by_key(rep.read_table("orders"), ["id"], COLS) == expected

    rep.load("orders")
    assert duckdb_rows(rep, "orders", ["id"], COLS) == expected
    execute(pg_url, "UPDATE orders SET state = 'after', updated_at = now() + interval '9 seconds' WHERE id = 1")
    after = rep.sync("orders")
    assert after.extract.batch_id == 7 and after.extract.rows_committed == 1

    pruned = rep.compact("orders", dt.timedelta(0))
    assert pruned.removed_history_files > 0
    with pytest.raises(LakeError, match="older than the retention"):
        rep.read_table("orders", as_of=3)
    assert rows_by_key(rep.read_table("orders"), ["id"], COLS) == source_rows(pg_url, "SELECT id, state FROM orders", ["id"], COLS)
