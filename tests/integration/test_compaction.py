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


def _orders(pg_url: str, tmp_path: Path, warehouse: str) -> Replicator:
    execute(pg_url, "CREATE TABLE orders (id int PRIMARY KEY, state text, updated_at timestamptz NOT NULL)",
            "INSERT INTO orders SELECT g, 'new', now() - interval '2 hours' FROM generate_series(1, 50) g")
    path = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=warehouse,
                         tables={"orders": "source: app\ntable: orders\nprimary_key: [id]\nwatermark: updated_at\n"})
    return Replicator.from_path(path)


def _physical_rows(pg_url: str, warehouse: str, tmp_path: Path) -> dict[int, str]:
    """Each warehouse row's physical identity (PostgreSQL: the inserting transaction; DuckDB: its rowid),
    which a rewrite of the row changes."""
    if warehouse == "postgres":
        from ..conftest import query

        return {r[0]: str(r[1]) for r in query(pg_url, "SELECT id, xmin FROM raw.orders")}
    import duckdb

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return {r[0]: str(r[1]) for r in con.execute("SELECT id, rowid FROM raw.orders").fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_compaction_moves_nothing_in_a_warehouse_that_holds_its_state(tmp_path: Path, pg_url: str,
                                                                          warehouse: str) -> None:
    from ..conftest import query

    url = f"duckdb:///{tmp_path / 'wh.duckdb'}" if warehouse == "duckdb" else pg_url
    rep = _orders(pg_url, tmp_path, url)
    rep.sync("orders")
    for minutes in (50, 40):
        execute(pg_url, f"UPDATE orders SET state = 'v{minutes}', updated_at = now() - interval '{minutes} minutes'"
                        " WHERE id <= 10")
        rep.sync("orders")
    before = _physical_rows(pg_url, warehouse, tmp_path)
    assert rep.compact("orders").batch_id == 4
    loaded = rep.load("orders")
    assert loaded.batches == [4] and loaded.rows_loaded == 0
    assert _physical_rows(pg_url, warehouse, tmp_path) == before  # not one row rewritten
    if warehouse == "postgres":
        assert query(pg_url, "SELECT last_loaded_seq FROM raw._replicator_batches WHERE table_name = 'orders'") == [(4,)]
    # Later batches load on top as usual.
    execute(pg_url, "UPDATE orders SET state = 'late', updated_at = now() - interval '30 minutes' WHERE id = 1",
            "DELETE FROM orders WHERE id = 2")
    rep.sync("orders")
    rep.reconcile("orders", apply_deletes=True)
    rep.load("orders")
    expected = source_rows(pg_url, "SELECT id, state FROM orders", ["id"], COLS)
    if warehouse == "duckdb":
        assert duckdb_rows(rep, "orders", ["id"], COLS) == expected
    else:
        got = {(r[0],): (r[0], r[1]) for r in query(pg_url, "SELECT id, state FROM raw.orders")}
        assert got == expected


def test_a_warehouse_behind_a_compaction_loads_it_whole(tmp_path: Path, pg_url: str) -> None:
    rep = _orders(pg_url, tmp_path, f"duckdb:///{tmp_path / 'wh.duckdb'}")
    rep.sync("orders")
    execute(pg_url, "UPDATE orders SET state = 'v2', updated_at = now() - interval '40 minutes' WHERE id <= 10")
    rep.extract("orders")  # batch 2 reaches the lake, not the warehouse
    assert rep.compact("orders").batch_id == 3
    loaded = rep.load("orders")
    assert loaded.batches == [3] and loaded.rows_loaded == 50
    assert duckdb_rows(rep, "orders", ["id"], COLS) == source_rows(pg_url, "SELECT id, state FROM orders", ["id"], COLS)


def _visible_files(lake: Path) -> dict[str, int]:
    """Parquet files per partition folder of the Hive layout (what a folder reader sees)."""
    counts: dict[str, int] = {}
    for f in lake.rglob("*.parquet"):
        parts = f.relative_to(lake).parts
        if not parts[0].startswith("_"):
            counts[parts[0]] = counts.get(parts[0], 0) + 1
    return counts


@pytest.mark.parametrize("max_rows", [0, 10])
def test_a_sync_compacts_a_table_whose_partitions_pass_the_bound(tmp_path: Path, pg_url: str, max_rows: int) -> None:
    import json

    execute(pg_url, "CREATE TABLE orders (id int PRIMARY KEY, state text, created_at timestamptz NOT NULL, "
                    "updated_at timestamptz NOT NULL)",
            "INSERT INTO orders SELECT g, 'new', '2026-01-01'::timestamptz + (g % 3 || ' days')::interval,"
            " now() - interval '2 hours' FROM generate_series(1, 60) g")
    path = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                         warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}", tables={
        "orders": "source: app\ntable: orders\nprimary_key: [id]\nwatermark: updated_at\npartition_by: created_at\n"
                  f"compaction: {{max_files_per_partition: 3, max_rows: {max_rows}}}\n"})
    rep = Replicator.from_path(path)
    rep.sync("orders")
    compactions = []
    for i in range(1, 9):  # each batch adds one file to each of the three day partitions
        execute(pg_url, f"UPDATE orders SET state = 'v{i}', updated_at = now() - interval '{100 - i} minutes'"
                        f" WHERE id % 10 = {i}")
        result = rep.sync("orders")
        compactions.append(result.compaction is not None and result.compaction.batch_id is not None)
        files = _visible_files(tmp_path / "lake" / "orders")
        assert len(files) == 3
        expected = source_rows(pg_url, "SELECT id, state FROM orders", ["id"], COLS)
        assert duckdb_rows(rep, "orders", ["id"], COLS) == expected
        assert rows_by_key(rep.read_table("orders"), ["id"], COLS) == expected
        if not max_rows:
            assert max(files.values()) <= 3, files  # the bound holds after every sync
    manifests = [json.loads(p.read_text()) for p in sorted((tmp_path / "lake" / "orders" / "_manifests").glob("*.json"))]
    compacted = [m["seq"] for m in manifests if m["stats"].get("compaction_of")]
    if max_rows:  # the table is over max_rows: left to `replicator compact`, the files pile up
        assert not compacted and not any(compactions)
        assert max(_visible_files(tmp_path / "lake" / "orders").values()) == 9
    else:
        assert compacted and sum(compactions) == len(compacted) >= 2
