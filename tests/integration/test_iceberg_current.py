"""The current-state Iceberg table `<current_namespace>.<name>`: one row per key, equal to the source.

Oracles: the source's rows (PostgreSQL), read with SQL; the Iceberg table read by pyiceberg's own scan,
by polars `scan_iceberg` and by DuckDB over pyiceberg's Arrow scan; and the table's data files as the
catalog lists them. Nothing here uses replicator's reader or its current-state rule.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from pyiceberg.catalog import sql as pyiceberg_sql

from replicator import Replicator
from replicator.iceberg import file_io_properties

from ..conftest import execute, query, write_project

COLUMNS = ["id", "city_id", "price", "updated_at"]


def _project(tmp_path: Path, pg_url: str, *, lake: str, catalog_uri: str, table: str) -> Path:
    path = write_project(tmp_path, sources={"app": pg_url}, lake=lake, warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
                         tables={"rides": table})
    text = path.read_text().replace(f"  url: '{lake}'\n", f"  url: '{lake}'\n  iceberg:\n    catalog_uri: '{catalog_uri}'\n")
    path.write_text(text)
    return path


def _source(pg_url: str, columns: list[str] = COLUMNS) -> dict[int, tuple[Any, ...]]:
    rows = query(pg_url, f"SELECT {', '.join(columns)} FROM rides")  # noqa: S608 - the test's own column names
    return {r[0]: tuple(r[1:]) for r in rows}


def _by_key(table: pa.Table, columns: list[str] = COLUMNS) -> dict[int, tuple[Any, ...]]:
    rows = table.select(columns).to_pylist()
    by_key = {r["id"]: tuple(r[c] for c in columns[1:]) for r in rows}
    assert len(by_key) == len(rows), "a key appears more than once in the current state"
    return by_key


def _files(table: Any, snapshot_id: int | None = None) -> dict[tuple[Any, ...], set[str]]:
    """Per partition, the data files of a snapshot, as the catalog lists them."""
    out: dict[tuple[Any, ...], set[str]] = {}
    for task in table.scan(snapshot_id=snapshot_id).plan_files():
        record = task.file.partition
        out.setdefault(tuple(record[i] for i in range(len(record))), set()).add(task.file.file_path)
    return out


def _assert_reads_as(table: Any, expected: dict[int, tuple[Any, ...]], columns: list[str] = COLUMNS) -> None:
    """pyiceberg, polars and DuckDB each read exactly `expected`, one row per key."""
    arrow = table.scan().to_arrow()
    assert _by_key(arrow, columns) == expected
    assert _by_key(pl.scan_iceberg(table).collect().to_arrow(), columns) == expected
    con = duckdb.connect()
    con.register("current_state", arrow)
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM current_state").fetchone() == (len(expected),) * 2


@pytest.fixture(params=["sqlite-local", "postgres-local", "sqlite-s3"])
def setting(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> dict[str, str]:
    if request.param == "sqlite-s3":
        lake = request.getfixturevalue("s3_lake")
    else:
        lake = str(tmp_path / "lake")
    catalog = pg_url if request.param == "postgres-local" else f"sqlite:///{tmp_path / 'iceberg.db'}"
    return {"lake": lake, "catalog": catalog}


def test_the_current_state_table_equals_the_source_through_every_kind_of_batch(
        tmp_path: Path, pg_url: str, setting: dict[str, str]) -> None:
    execute(
        pg_url,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int NOT NULL, price numeric(12,2),"
        " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, g % 3 + 1, g * 1.5, timestamptz '2026-11-20 12:00+00' + (g % 4) * interval '1 day',"
        " now() - interval '2 hours' FROM generate_series(1, 400) g",
    )
    project = _project(tmp_path, pg_url, lake=setting["lake"], catalog_uri=setting["catalog"],
                       table="source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"
                             "partition_by: [city_id, created_at]\ndelete_detection: reconcile\n")
    rep = Replicator.from_path(project)
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=setting["catalog"], **file_io_properties())
    states: dict[int, dict[int, tuple[Any, ...]]] = {}

    def sync(expected_batch: int, **kwargs: Any) -> Any:
        result = rep.sync("rides", **kwargs).extract
        assert result.catalog_behind is None and result.published.last_batch_id == expected_batch
        table = catalog.load_table("lake_current.rides")
        assert table.current_snapshot().summary["replicator.batch_id"] == str(expected_batch)
        _assert_reads_as(table, _source(pg_url))
        states[expected_batch] = _source(pg_url)
        return table

    first = sync(1)
    # Each snapshot records the batch's watermark, as the lake's manifest (read here as plain JSON) stored it.
    if "://" not in setting["lake"]:
        import json

        manifest = json.loads((Path(setting["lake"]) / "rides" / "_manifests" / f"{1:020d}.json").read_text())
        summary = first.current_snapshot().summary
        assert summary["replicator.watermark"] == str(manifest["watermark"]) != ""
        assert summary["replicator.watermark_column"] == "updated_at"
    assert set(_files(first)) == {(city, day) for city in (1, 2, 3) for day in range(20777, 20781)}

    # Batch 2 changes rows of one partition (city 2, 2026-11-21) only: every other partition keeps its files.
    execute(pg_url, "UPDATE rides SET price = price + 100, updated_at = now() - interval '1 hour'"
                    " WHERE city_id = 2 AND created_at = timestamptz '2026-11-21 12:00+00'")
    second = sync(2)
    before, after = _files(first, first.refs()["batch-1"].snapshot_id), _files(second)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed == {(2, 20778)}

    # Batch 3 moves a key to another partition (its city changes): its old version leaves the old partition.
    execute(pg_url, "UPDATE rides SET city_id = 3, updated_at = now() - interval '50 minutes' WHERE id = 4")
    sync(3)

    # Batch 4: reconcile finds hard deletes and commits deletion markers; they leave the current state.
    execute(pg_url, "DELETE FROM rides WHERE id IN (5, 6, 7, 200)")
    rep.reconcile("rides", apply_deletes=True)
    table = catalog.load_table("lake_current.rides")
    assert table.current_snapshot().summary["replicator.batch_id"] == "4"
    _assert_reads_as(table, _source(pg_url))
    states[4] = _source(pg_url)

    # Batch 5: an added column is Iceberg schema evolution; rows of older files read NULL there.
    execute(pg_url, "ALTER TABLE rides ADD COLUMN note text",
            "UPDATE rides SET note = 'late', updated_at = now() - interval '40 minutes' WHERE id BETWEEN 10 AND 15")
    fifth = sync(5)
    assert "note" in fifth.schema().column_names
    _assert_reads_as(fifth, _source(pg_url, [*COLUMNS, "note"]), [*COLUMNS, "note"])

    # Batch 6: a compaction changes no row; batch 7: a full refresh after deletes the watermark cannot see.
    rep.compact("rides")
    compacted = catalog.load_table("lake_current.rides")
    assert compacted.current_snapshot().summary["replicator.batch_id"] == "6"
    assert _files(compacted) == _files(fifth)  # the same state: the snapshot records the batch, moves no file
    _assert_reads_as(compacted, states[5])
    execute(pg_url, "DELETE FROM rides WHERE id > 390")
    sync(7, full_refresh=True)

    # Time travel by batch tag: each state as the source was then.
    table = catalog.load_table("lake_current.rides")
    for batch, expected in states.items():
        old = table.scan(snapshot_id=table.refs()[f"batch-{batch}"].snapshot_id).to_arrow()
        assert _by_key(old) == expected, f"batch {batch}"
    # and by timestamp: the snapshot current at batch 2's commit.
    moment = table.snapshot_by_id(table.refs()["batch-2"].snapshot_id).timestamp_ms
    as_of = table.snapshot_as_of_timestamp(moment)
    assert _by_key(table.scan(snapshot_id=as_of.snapshot_id).to_arrow()) == states[2]


def _unpartitioned(tmp_path: Path, pg_url: str) -> Replicator:
    """A project of `rides` without partition_by, its lake on local disk, its catalog the SQLite file c.db."""
    return Replicator.from_path(_project(
        tmp_path, pg_url, lake=str(tmp_path / "lake"), catalog_uri=f"sqlite:///{tmp_path / 'c.db'}",
        table="source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"))


def test_a_table_without_partition_by_is_partitioned_by_key_ranges(tmp_path: Path, pg_url: str) -> None:
    execute(
        pg_url,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int, price numeric(12,2), updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, 1, 1.5, now() - interval '2 hours' FROM generate_series(1, 100) g",
        "INSERT INTO rides SELECT g, 2, 2.5, now() - interval '2 hours' FROM generate_series(5000001, 5000100) g",
    )
    rep = _unpartitioned(tmp_path, pg_url)
    rep.sync("rides")
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'c.db'}")
    first = catalog.load_table("lake_current.rides")
    assert set(_files(first)) == {(0,), (5_000_000,)}
    execute(pg_url, "UPDATE rides SET price = 9, updated_at = now() - interval '1 hour' WHERE id > 5000050")
    rep.sync("rides")
    second = catalog.load_table("lake_current.rides")
    assert _files(second)[(0,)] == _files(first)[(0,)]  # the older key range is not rewritten
    assert _files(second)[(5_000_000,)] != _files(first)[(5_000_000,)]
    assert _by_key(second.scan().to_arrow()) == _source(pg_url)
    assert _source(pg_url)[5000099][1] == Decimal("9.00")


def test_a_publication_that_stops_between_the_two_tables_is_finished_once(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(
        pg_url,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int, price numeric(12,2), updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, g % 2, 1.5, now() - interval '2 hours' FROM generate_series(1, 50) g",
    )
    rep = _unpartitioned(tmp_path, pg_url)
    rep.sync("rides")
    import replicator.iceberg as publication

    def fails(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("catalog went away")

    monkeypatch.setattr(publication, "apply_batch", fails)  # the change table commits, the current state fails
    execute(pg_url, "UPDATE rides SET price = 2, updated_at = now() - interval '1 hour' WHERE id <= 10")
    behind = rep.sync("rides").extract
    assert behind.catalog_behind is not None and "catalog went away" in behind.catalog_behind
    assert behind.batch_id == 2  # the sync stays green: its lake commit stands
    monkeypatch.undo()

    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'c.db'}")
    assert rep.publish("rides").published == [2]
    for identifier in ("lake.rides", "lake_current.rides"):
        table = catalog.load_table(identifier)
        batches = [s.summary["replicator.batch_id"] for s in table.snapshots()]
        assert batches == ["1", "2"], identifier  # each batch once in each table
    assert _by_key(catalog.load_table("lake_current.rides").scan().to_arrow()) == _source(pg_url)


def test_a_key_the_source_does_not_enforce_is_still_one_row(tmp_path: Path, pg_url: str) -> None:
    """A full batch with a repeated key (the source table has no primary key constraint): one row for it."""
    execute(
        pg_url,
        "CREATE TABLE rides (id bigint NOT NULL, city_id int, price numeric(12,2), updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, 1, 1.5, now() - interval '2 hours' FROM generate_series(1, 20) g",
        "INSERT INTO rides VALUES (7, 1, 99.5, now() - interval '1 hour')",
    )
    rep = _unpartitioned(tmp_path, pg_url)
    rep.sync("rides")
    current = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'c.db'}").load_table(
        "lake_current.rides").scan().to_arrow()
    rows = current.select(["id", "price"]).to_pylist()
    assert len(rows) == 20 and {r["id"] for r in rows} == set(range(1, 21))
    assert [r["price"] for r in rows if r["id"] == 7] == [Decimal("99.50")]  # the later watermark wins


def test_compaction_expires_the_current_state_history_past_its_retention(tmp_path: Path, pg_url: str) -> None:
    import time

    execute(
        pg_url,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int, price numeric(12,2), updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, 1, 1.5, now() - interval '2 hours' FROM generate_series(1, 60) g",
    )
    path = _project(tmp_path, pg_url, lake=str(tmp_path / "lake"), catalog_uri=f"sqlite:///{tmp_path / 'c.db'}",
                    table="source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n")
    path.write_text(path.read_text().replace("  iceberg:\n", "  iceberg:\n    tag_max_age: 1s\n"))
    rep = Replicator.from_path(path)
    rep.sync("rides")
    for minutes in (50, 40, 30):  # three batches, each rewriting the one key-range partition
        execute(pg_url, f"UPDATE rides SET price = price + 1, updated_at = now() - interval '{minutes} minutes'"
                        " WHERE id <= 10")
        rep.sync("rides")
    folder = tmp_path / "lake" / "rides" / "_current" / "data"
    on_disk_before = len(list(folder.rglob("*.parquet")))
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'c.db'}")
    assert len(catalog.load_table("lake_current.rides").snapshots()) == 4 and on_disk_before >= 4

    time.sleep(1.1)  # the batch tags are past their age
    result = rep.compact("rides", dt.timedelta(0))
    table = catalog.load_table("lake_current.rides")
    assert _by_key(table.scan().to_arrow()) == _source(pg_url)
    kept = {t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()}
    on_disk = {str(p) for p in folder.rglob("*.parquet")}
    assert on_disk == kept  # only the files the current snapshot reads are left
    assert [s.snapshot_id for s in table.snapshots()] == [table.current_snapshot().snapshot_id]
    assert not [name for name in table.refs() if name.startswith("batch-") and name != "batch-5"]
    assert result.removed_history_files >= on_disk_before - len(kept)
