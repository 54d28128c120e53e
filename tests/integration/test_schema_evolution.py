"""The lake stays one readable dataset as the source schema changes; deletes become markers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from replicator import Replicator, SchemaChangeError
from replicator.lake import latest_manifest, list_manifest_seqs
from replicator.lake.store import LocalStore

from ..conftest import execute, query, write_project
from .helpers import duckdb_rows, lake_current, rows_by_key, source_rows


def _rep(tmp_path: Path, url: str, duckdb_url: str, extra: str = "", lake: str | None = None) -> Replicator:
    path = write_project(tmp_path, sources={"app": url}, lake=lake or str(tmp_path / "lake"), warehouse=duckdb_url,
                         tables={"items": "source: app\ntable: items\nprimary_key: [id]\nwatermark: updated_at\n" + extra})
    return Replicator.from_path(path)


def _read_whole_lake(rep: Replicator) -> tuple[pa.Table, list[tuple]]:
    """Read every visible file as one dataset, with pyarrow (the lake's recorded schema) and with DuckDB."""
    schema = latest_manifest(rep.lake, "items").schema
    root = f"{rep.lake.root}/items"
    table = ds.dataset(root, schema=schema, format="parquet", partitioning="hive", filesystem=rep.lake.fs).to_table()
    con = duckdb.connect()
    if isinstance(rep.lake, LocalStore):
        rows = con.execute(f"SELECT * FROM read_parquet('{root}/*/*.parquet', union_by_name = true)").fetchall()
    else:  # DuckDB reads S3 only through its httpfs extension, which is not installed here
        con.register("lake_files", table)
        rows = con.execute("SELECT * FROM lake_files").fetchall()
    con.close()
    return table, rows


def _bump(url: str, sql: str) -> None:
    execute(url, sql.replace("{now}", "now() + interval '1 second'"))


def test_added_and_widened_columns_keep_the_lake_readable(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE items (id int PRIMARY KEY, qty int, price numeric(10,2), ratio real, "
                    "code varchar(10), updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO items (id, qty, price, ratio, code) VALUES (1, 5, 9.99, 0.5, 'a'), (2, 7, 1.25, 0.25, 'b')")
    rep = _rep(tmp_path, pg_url, duckdb_url)
    rep.sync("items")
    execute(pg_url, "ALTER TABLE items ADD COLUMN color text",
            "ALTER TABLE items ALTER COLUMN qty TYPE bigint", "ALTER TABLE items ALTER COLUMN price TYPE numeric(14,2)",
            "ALTER TABLE items ALTER COLUMN ratio TYPE double precision", "ALTER TABLE items ALTER COLUMN code TYPE text",
            "INSERT INTO items (id, qty, price, ratio, code, color, updated_at) "
            "VALUES (3, 9000000000, 123456789012.34, 0.1, 'long code here', 'red', now() + interval '1 second')")
    result = rep.sync("items")
    assert result.extract.rows_committed == 1

    schema = latest_manifest(rep.lake, "items").schema
    assert schema.field("qty").type == pa.int64() and schema.field("price").type == pa.decimal128(14, 2)
    assert schema.field("ratio").type == pa.float64() and schema.field("color").type == pa.string()
    table, duck = _read_whole_lake(rep)
    assert table.num_rows == 3 and len(duck) == 3
    by_id = {r["id"]: r for r in table.to_pylist()}
    assert by_id[1]["color"] is None and by_id[3]["color"] == "red"  # old files read the new column as NULL
    assert by_id[3]["qty"] == 9000000000 and by_id[3]["price"] == Decimal("123456789012.34")
    assert by_id[1]["price"] == Decimal("9.99") and by_id[1]["ratio"] == 0.5

    expected = source_rows(pg_url, "SELECT id, qty, price, color FROM items", ["id"], ["id", "qty", "price", "color"])
    assert duckdb_rows(rep, "items", ["id"], ["id", "qty", "price", "color"]) == expected
    assert rows_by_key(rep.read_table("items"), ["id"], ["id", "qty", "price", "color"]) == expected


def test_dropped_column_is_null_in_new_batches(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    execute(mysql_url, "CREATE TABLE items (id int PRIMARY KEY, note varchar(20), updated_at datetime(6) NOT NULL)",
            "INSERT INTO items VALUES (1, 'kept', '2026-01-01 00:00:00')")
    rep = _rep(tmp_path, mysql_url, duckdb_url)
    rep.sync("items")
    execute(mysql_url, "ALTER TABLE items DROP COLUMN note", "INSERT INTO items VALUES (2, '2026-01-02 00:00:00')")
    assert rep.sync("items").extract.rows_committed == 1
    table, duck = _read_whole_lake(rep)
    assert {r["id"]: r["note"] for r in table.to_pylist()} == {1: "kept", 2: None}
    assert len(duck) == 2
    assert duckdb_rows(rep, "items", ["id"], ["id", "note"]) == {(1,): (1, "kept"), (2,): (2, None)}


def test_incompatible_change_stops_the_table_and_changes_nothing(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE items (id int PRIMARY KEY, qty int, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO items (id, qty) VALUES (1, 5)")
    rep = _rep(tmp_path, pg_url, duckdb_url)
    rep.sync("items")
    execute(pg_url, "ALTER TABLE items ALTER COLUMN qty TYPE text", "UPDATE items SET qty = 'five', updated_at = now() + interval '1 second'")
    with pytest.raises(SchemaChangeError, match=r"qty int32 -> string.*replicator sync items --full-refresh"):
        rep.sync("items")
    assert list_manifest_seqs(rep.lake, "items") == [1]
    assert duckdb_rows(rep, "items", ["id"], ["id", "qty"]) == {(1,): (1, 5)}
    resynced = rep.sync("items", full_refresh=True)
    assert resynced.extract.mode == "full"
    assert duckdb_rows(rep, "items", ["id"], ["id", "qty"]) == {(1,): (1, "five")}
    assert rep.read_table("items").to_pylist()[0]["qty"] == "five"


def test_fail_policy_stops_on_any_change(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE items (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO items (id) VALUES (1)")
    rep = _rep(tmp_path, pg_url, duckdb_url, extra="on_schema_change: fail\n")
    rep.sync("items")
    execute(pg_url, "ALTER TABLE items ADD COLUMN color text")
    with pytest.raises(SchemaChangeError, match="color added.*on_schema_change is fail"):
        rep.sync("items")


def test_soft_deletes_leave_the_current_state(tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE items (id int PRIMARY KEY, name text, deleted_at timestamptz, "
                    "updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO items (id, name) SELECT g, 'n' || g FROM generate_series(1, 10) g")
    rep = _rep(tmp_path, pg_url, duckdb_url, extra="soft_delete: deleted_at\n", lake=s3_lake)
    rep.sync("items")
    execute(pg_url, "UPDATE items SET deleted_at = now(), updated_at = now() + interval '1 second' WHERE id IN (3, 4)")
    rep.sync("items")
    alive = source_rows(pg_url, "SELECT id, name FROM items WHERE deleted_at IS NULL", ["id"], ["id", "name"])
    assert len(alive) == 8
    assert rows_by_key(lake_current(rep, "items"), ["id"], ["id", "name"]) == alive
    assert duckdb_rows(rep, "items", ["id"], ["id", "name"]) == alive
    assert rows_by_key(rep.read_table("items"), ["id"], ["id", "name"]) == alive
    markers = [r for r in _read_whole_lake(rep)[0].to_pylist() if r["_deleted"]]
    assert sorted(r["id"] for r in markers) == [3, 4]
    assert query(pg_url, "SELECT count(*) FROM items") == [(10,)]  # the source keeps its rows


def test_postgres_warehouse_follows_added_widened_and_deleted(tmp_path: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE TABLE items (id int PRIMARY KEY, qty int, price numeric(10,2), deleted boolean, "
                    "updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO items (id, qty, price, deleted) VALUES (1, 5, 9.99, false), (2, 6, 1.00, false)")
    rep = _rep(tmp_path, pg_url, pg_url, extra="soft_delete: deleted\n")
    rep.sync("items")
    execute(pg_url, "ALTER TABLE items ADD COLUMN color text", "ALTER TABLE items ALTER COLUMN qty TYPE bigint",
            "ALTER TABLE items ALTER COLUMN price TYPE numeric(14,2)",
            "UPDATE items SET deleted = true, updated_at = now() + interval '1 second' WHERE id = 2",
            "INSERT INTO items VALUES (3, 9000000000, 123456789012.34, false, now() + interval '1 second', 'red')")
    rep.sync("items")
    rows = query(pg_url, "SELECT id, qty, price, color FROM raw.items ORDER BY id")
    assert rows == [(1, 5, Decimal("9.99"), None), (3, 9000000000, Decimal("123456789012.34"), "red")]
    types = dict(query(pg_url, "SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema = 'raw' AND table_name = 'items'"))
    assert types["qty"] == "bigint" and types["color"] == "text"
