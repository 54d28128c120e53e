"""Iceberg publication (`lake.iceberg`): every committed batch registered once, in order, read by pyiceberg and DuckDB.

The oracles never use replicator's reader: the source's rows (PostgreSQL), the lake's Parquet files read
one by one with pyarrow, and the Iceberg table read through pyiceberg's own scan (and DuckDB over its
Arrow result).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import sql as pyiceberg_sql

from replicator import Replicator
from replicator.cli import main

from ..conftest import execute, query, write_project


def _setup(pg_url: str) -> None:
    execute(
        pg_url,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int, price numeric(12,2),"
        " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, g % 3 + 1, g * 1.5, timestamptz '2026-11-28 12:00+00' + (g % 2) * interval '1 day',"
        " now() - interval '1 hour' FROM generate_series(1, 300) g",
    )


def _project(tmp_path: Path, pg_url: str, catalog_uri: str = "sqlite:///iceberg.db") -> Path:
    path = write_project(
        tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
        tables={"rides": "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"
                         "partition_by: [city_id, created_at]\n"})
    text = path.read_text().replace(f"  url: '{tmp_path / 'lake'}'\n",
                                    f"  url: '{tmp_path / 'lake'}'\n  iceberg:\n    catalog_uri: '{catalog_uri}'\n")
    path.write_text(text)
    return path


def _iceberg(tmp_path: Path):  # type: ignore[no-untyped-def]
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'iceberg.db'}")
    return catalog.load_table("lake.rides")


def _batch_ids(table) -> list[int]:  # type: ignore[no-untyped-def]
    """The replicator batch of every snapshot that added files, in commit order."""
    return [int(s.summary["replicator.batch_id"]) for s in table.snapshots()
            if s.summary is not None and int(s.summary.get("added-data-files", "0") or 0) > 0]


def _raw_lake_rows(tmp_path: Path) -> int:
    files = [p for p in (tmp_path / "lake" / "rides").rglob("*.parquet")
             if not p.relative_to(tmp_path / "lake" / "rides").parts[0].startswith("_")]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _current(change: pa.Table) -> dict[int, tuple]:
    """Per id, the version of the highest batch, then the highest updated_at; deleted ids dropped."""
    best: dict[int, tuple] = {}
    for row in change.select(["id", "price", "updated_at", "_batch_id", "_deleted"]).to_pylist():
        rank = (row["_batch_id"], row["updated_at"])
        if row["id"] not in best or rank > best[row["id"]][0]:
            best[row["id"]] = (rank, row)
    return {k: (v[1]["price"], v[1]["updated_at"]) for k, v in best.items() if not v[1]["_deleted"]}


def _source(pg_url: str) -> dict[int, tuple]:
    return {r[0]: (r[1], r[2]) for r in query(pg_url, "SELECT id, price, updated_at FROM rides")}


def test_every_batch_is_published_once_and_reads_as_the_source(tmp_path: Path, pg_url: str) -> None:
    _setup(pg_url)
    rep = Replicator.from_path(_project(tmp_path, pg_url))
    first = rep.sync("rides").extract
    assert first.published is not None and first.published.published == [1] and first.catalog_behind is None
    at_batch_1 = _source(pg_url)
    execute(pg_url, "UPDATE rides SET price = price + 1, updated_at = now() - interval '10 minutes' WHERE id <= 20",
            "INSERT INTO rides SELECT g, 2, 9.5, timestamptz '2026-11-30 08:00+00', now() - interval '10 minutes'"
            " FROM generate_series(301, 310) g")
    assert rep.sync("rides").extract.published.published == [2]  # type: ignore[union-attr]

    table = _iceberg(tmp_path)
    assert _batch_ids(table) == [1, 2]
    assert table.properties["gc.enabled"] == "false"
    change = table.scan().to_arrow()
    assert change.num_rows == _raw_lake_rows(tmp_path) == 310 + 20  # every row version, once
    assert _current(change) == _source(pg_url)
    # Time travel by the batch tag: the state as the source was then.
    tag = table.refs()["batch-1"]
    assert _current(table.scan(snapshot_id=tag.snapshot_id).to_arrow()) == at_batch_1
    # Partitions prune: one city's files only.
    from pyiceberg.expressions import EqualTo

    city = table.scan(row_filter=EqualTo("city_id", 2))
    assert {t.file.partition[0] for t in city.plan_files()} == {2}
    assert city.to_arrow().num_rows == sum(1 for k in change.column("city_id").to_pylist() if k == 2)
    # DuckDB over pyiceberg's Arrow scan: one row per key in the current state.
    con = duckdb.connect()
    con.register("change", change)
    distinct, total = con.execute(
        "SELECT count(DISTINCT id), count(*) FROM (SELECT * FROM change QUALIFY row_number() OVER "
        "(PARTITION BY id ORDER BY _batch_id DESC, updated_at DESC) = 1 AND NOT _deleted)").fetchone()
    assert distinct == total == 310

    # polars reads the Iceberg table itself (scan_iceberg over the pyiceberg table): the same current state.
    import polars as pl

    scanned = pl.scan_iceberg(table).collect().to_arrow()
    assert scanned.num_rows == change.num_rows and _current(scanned) == _source(pg_url)

    # Publishing again finds nothing to do, and doubles nothing.
    assert rep.publish("rides").published == []
    assert _batch_ids(_iceberg(tmp_path)) == [1, 2]
    # A crash between a batch's data commit and its tag commit: the next publication tags it.
    table.manage_snapshots().remove_tag("batch-2").commit()
    assert "batch-2" not in _iceberg(tmp_path).refs()
    assert rep.publish("rides").published == []
    assert _iceberg(tmp_path).refs()["batch-2"].snapshot_id == table.refs()["main"].snapshot_id


def test_a_full_refresh_replaces_the_iceberg_table_in_one_commit(tmp_path: Path, pg_url: str) -> None:
    _setup(pg_url)
    rep = Replicator.from_path(_project(tmp_path, pg_url))
    rep.sync("rides")
    execute(pg_url, "DELETE FROM rides WHERE id > 250")
    assert rep.sync("rides", full_refresh=True).extract.published.published == [2]  # type: ignore[union-attr]
    table = _iceberg(tmp_path)
    assert table.scan().to_arrow().num_rows == 250
    assert _current(table.scan().to_arrow()) == _source(pg_url)
    assert table.current_snapshot().summary["replicator.batch_id"] == "2"


def test_a_catalog_that_is_down_leaves_the_sync_green_and_is_caught_up_once(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _setup(pg_url)
    project = _project(tmp_path, pg_url, catalog_uri=f"sqlite:///{tmp_path / 'no-such-folder' / 'iceberg.db'}")
    assert main(["--project", str(project), "sync", "rides"]) == 0
    err = capsys.readouterr().err
    assert "the Iceberg catalog is behind the lake" in err and "replicator publish rides" in err
    execute(pg_url, "UPDATE rides SET price = 0, updated_at = now() - interval '10 minutes' WHERE id <= 5")
    assert main(["--project", str(project), "sync", "rides"]) == 0  # batch 2, catalog still down
    assert "behind" in capsys.readouterr().err

    # The catalog comes back (here: the folder of its file exists); `replicator publish` catches up in order.
    (tmp_path / "no-such-folder").mkdir()
    assert main(["--project", str(project), "publish", "rides"]) == 0
    assert "published batches [1, 2]" in capsys.readouterr().out
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'no-such-folder' / 'iceberg.db'}")
    table = catalog.load_table("lake.rides")
    assert _batch_ids(table) == [1, 2]
    assert _current(table.scan().to_arrow()) == _source(pg_url)
    assert main(["--project", str(project), "publish", "rides"]) == 0
    assert "up to date" in capsys.readouterr().out
    # --rebuild drops only the catalog entry and publishes from the latest full batch on: same rows.
    assert main(["--project", str(project), "publish", "--rebuild", "rides"]) == 0
    rebuilt = catalog.load_table("lake.rides")
    assert _current(rebuilt.scan().to_arrow()) == _source(pg_url)


def test_publish_without_a_catalog_names_the_key(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _setup(pg_url)
    project = write_project(
        tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
        tables={"rides": "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"})
    assert main(["--project", str(project), "publish", "rides"]) == 2
    assert "lake.iceberg is not set" in capsys.readouterr().err



def test_postgresql_catalog(tmp_path: Path, pg_url: str) -> None:
    """The SQL catalog's tables in PostgreSQL (the layout Spark's and Trino's JDBC catalogs read)."""
    _setup(pg_url)
    rep = Replicator.from_path(_project(tmp_path, pg_url, catalog_uri=pg_url))
    rep.sync("rides")
    execute(pg_url, "UPDATE rides SET price = 1, updated_at = now() - interval '10 minutes' WHERE id <= 3")
    rep.sync("rides")
    assert sorted(query(pg_url, "SELECT table_namespace, table_name FROM iceberg_tables")) == [
        ("lake", "rides"), ("lake_current", "rides")]
    table = pyiceberg_sql.SqlCatalog("replicator", uri=pg_url).load_table("lake.rides")
    assert _batch_ids(table) == [1, 2]
    assert _current(table.scan().to_arrow()) == _source(pg_url)


@pytest.mark.integration
def test_s3_lake_published_and_read_over_http(tmp_path: Path, pg_url: str, s3_lake: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from replicator.iceberg import file_io_properties

    _setup(pg_url)
    path = _project(tmp_path, pg_url)
    path.write_text(path.read_text().replace(f"'{tmp_path / 'lake'}'", f"'{s3_lake}'"))
    rep = Replicator.from_path(path)
    rep.sync("rides")
    execute(pg_url, "DELETE FROM rides WHERE id <= 4")
    rep.reconcile("rides", apply_deletes=True)
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'iceberg.db'}", **file_io_properties())
    table = catalog.load_table("lake.rides")
    assert table.location() == f"{s3_lake}/rides"
    assert _batch_ids(table) == [1, 2]  # the deletion markers are batch 2
    assert _current(table.scan().to_arrow()) == _source(pg_url)
    # A SQLite file beside an S3 lake works here, but is said loudly to be this machine's state only.
    assert "state on this machine only" in caplog.text and "PostgreSQL catalog_uri" in caplog.text


def test_an_added_column_evolves_the_iceberg_schema(tmp_path: Path, pg_url: str) -> None:
    _setup(pg_url)
    rep = Replicator.from_path(_project(tmp_path, pg_url))
    rep.sync("rides")
    execute(pg_url, "ALTER TABLE rides ADD COLUMN note text",
            "UPDATE rides SET note = 'late', updated_at = now() - interval '10 minutes' WHERE id <= 7")
    assert rep.sync("rides").extract.published.published == [2]  # type: ignore[union-attr]
    table = _iceberg(tmp_path)
    assert "note" in table.schema().column_names
    notes = table.scan(row_filter="note = 'late'").to_arrow()
    assert sorted(notes.column("id").to_pylist()) == list(range(1, 8))
    assert table.scan().to_arrow().num_rows == 307  # batch 1's files read with the new column as NULL


def test_files_are_registered_from_the_writers_footers_exactly_as_reading_them_would(
        tmp_path: Path, pg_url: str) -> None:
    """A batch this process wrote is registered from the footers its writer kept (none is read back), and
    every data file's entry (partition, counts, bounds, size) equals what pyiceberg builds by reading the
    file (`parquet_file_to_data_file`, the function behind `add_files`)."""
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    _setup(pg_url)
    rep = Replicator.from_path(_project(tmp_path, pg_url))
    rep.sync("rides")
    execute(pg_url, "ALTER TABLE rides ADD COLUMN note text",
            "UPDATE rides SET note = 'late', updated_at = now() - interval '10 minutes' WHERE id % 7 = 0")
    assert rep.sync("rides").extract.published.published == [2]  # type: ignore[union-attr]
    assert rep.lake.footers is not None and len(rep.lake.footers) == 0  # every kept footer was used once

    table = _iceberg(tmp_path)
    entries = [e.data_file for m in table.current_snapshot().manifests(table.io)  # type: ignore[union-attr]
               for e in m.fetch_manifest_entry(table.io)]
    assert len(entries) == len([p for p in (tmp_path / "lake" / "rides").rglob("*.parquet")
                                if not p.relative_to(tmp_path / "lake" / "rides").parts[0].startswith("_")])
    fields = ["file_path", "file_format", "partition", "record_count", "file_size_in_bytes", "column_sizes",
              "value_counts", "null_value_counts", "nan_value_counts", "lower_bounds", "upper_bounds",
              "split_offsets"]
    for entry in entries:
        read = parquet_file_to_data_file(table.io, table.metadata, entry.file_path)
        assert {f: getattr(entry, f) for f in fields} == {f: getattr(read, f) for f in fields}, entry.file_path
    assert sum(e.record_count for e in entries) == 300 + 300 // 7


def test_manifest_lists_stay_bounded_however_many_batches_are_published(tmp_path: Path, pg_url: str) -> None:
    """Each batch adds a manifest to the change table and overwrites part of the current-state table; neither
    table's current snapshot may list more manifests the more batches it has seen (every reader, and every
    later publication, reads them all). Both merge them at their min-count-to-merge (set to 3 here through
    the table property, as an Iceberg user would), and the current-state table drops the manifests of
    deleted entries that earlier overwrites left."""
    _setup(pg_url)
    rep = Replicator.from_path(_project(tmp_path, pg_url))
    rep.sync("rides")
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'iceberg.db'}")
    for identifier in ("lake.rides", "lake_current.rides"):
        catalog.load_table(identifier).transaction().set_properties(
            {"commit.manifest.min-count-to-merge": "3"}).commit_transaction()

    def manifests(identifier: str) -> int:
        table = catalog.load_table(identifier)
        return len(table.current_snapshot().manifests(table.io))  # type: ignore[union-attr]

    counts = []
    for batch in range(2, 10):
        execute(pg_url, f"UPDATE rides SET price = price + {batch}, updated_at = now() - interval '10 minutes'"
                        f" WHERE id % 30 = {batch}")
        assert rep.sync("rides").extract.published.published == [batch]  # type: ignore[union-attr]
        counts.append((manifests("lake.rides"), manifests("lake_current.rides")))
    assert max(max(c) for c in counts) <= 3, counts  # batch by batch, six partitions rewritten in turn
    change = catalog.load_table("lake.rides").scan().to_arrow()
    assert change.num_rows == _raw_lake_rows(tmp_path)  # merging lost or doubled no file
    assert _current(change) == _source(pg_url)
    current = catalog.load_table("lake_current.rides").scan().to_arrow()
    assert {r["id"]: (r["price"], r["updated_at"]) for r in current.to_pylist()} == _source(pg_url)


def test_concurrent_publishers_never_double_a_batch(tmp_path: Path, pg_url: str) -> None:
    import threading

    from replicator.errors import LockError

    _setup(pg_url)
    catalog_dir = tmp_path / "catalog"
    project = _project(tmp_path, pg_url, catalog_uri=f"sqlite:///{catalog_dir / 'iceberg.db'}")
    assert Replicator.from_path(project).sync("rides").extract.catalog_behind  # no folder yet: behind
    catalog_dir.mkdir()
    outcomes: list[object] = []

    def publish() -> None:
        try:
            outcomes.append(Replicator.from_path(project).publish("rides").published)
        except LockError as exc:  # the other publisher holds the table's lease
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=publish) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [1] in outcomes and all(o in ([1], [], "LockError") for o in outcomes), outcomes
    table = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{catalog_dir / 'iceberg.db'}").load_table("lake.rides")
    assert _batch_ids(table) == [1]
    assert table.scan().to_arrow().num_rows == 300


def test_a_type_iceberg_lacks_in_an_older_batch_is_refused_naming_the_column(
        tmp_path: Path, mysql_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A lake written before lake.iceberg holds uint32 files; Iceberg cannot register them until a full refresh."""
    execute(mysql_url, "CREATE TABLE counters (id int PRIMARY KEY, hits int unsigned, updated_at datetime(6))",
            "INSERT INTO counters VALUES (1, 4294967295, now(6) - interval 1 hour)")
    path = write_project(
        tmp_path, sources={"app": mysql_url}, lake=str(tmp_path / "lake"), warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
        tables={"counters": "source: app\ntable: counters\nprimary_key: [id]\nwatermark: updated_at\n"})
    assert main(["--project", str(path), "sync", "counters"]) == 0  # no Iceberg yet: the lake holds uint32
    path.write_text(path.read_text().replace(f"  url: '{tmp_path / 'lake'}'\n", f"  url: '{tmp_path / 'lake'}'\n  iceberg: {{}}\n"))
    execute(mysql_url, "UPDATE counters SET hits = 1, updated_at = now(6) - interval 30 minute")
    assert main(["--project", str(path), "sync", "counters"]) == 0  # the lake commit stands (uint32 -> int64 widens)
    err = capsys.readouterr().err
    assert "Iceberg has no type for hits (uint32)" in err and "--full-refresh" in err and "behind" in err
    assert main(["--project", str(path), "publish", "counters"]) == 1
    assert main(["--project", str(path), "sync", "counters", "--full-refresh"]) == 0
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'iceberg.db'}")
    rows = catalog.load_table("lake_current.counters").scan().to_arrow().select(["id", "hits"]).to_pylist()
    assert rows == [{"id": 1, "hits": 1}]


def test_validate_names_an_unreachable_catalog(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _setup(pg_url)
    project = _project(tmp_path, pg_url, catalog_uri=f"sqlite:///{tmp_path / 'missing' / 'iceberg.db'}")
    assert main(["--project", str(project), "validate"]) == 1
    err = capsys.readouterr().err
    assert f"{project}: lake.iceberg.catalog_uri: iceberg: cannot open the Iceberg catalog 'replicator'" in err
    assert not (tmp_path / "lake").exists()  # nothing was written
    (tmp_path / "missing").mkdir()
    assert main(["--project", str(project), "validate"]) == 0
