"""Guarantees 1-4, 6 and 8 of the core against real PostgreSQL, MariaDB, an S3 server and DuckDB."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from replicator import LockError, Replicator
from replicator.config import parse_size
from replicator.errors import WarehouseError
from replicator.lake import list_manifest_seqs, load_manifest
from replicator.sources import ReadRequest

from ..conftest import execute, query, write_project
from .helpers import (
    assert_no_duplicate_keys,
    content_digests,
    duckdb_rows,
    lake_current,
    lake_dataset,
    rows_by_key,
    source_rows,
)

PG_TABLE = (
    "CREATE TABLE events (id bigint PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT now())"
)
MY_TABLE = (
    "CREATE TABLE events (id bigint PRIMARY KEY, payload text, "
    "updated_at datetime(6) NOT NULL DEFAULT UTC_TIMESTAMP(6))"
)
EVENTS_YAML = """
    source: app
    table: events
    primary_key: [id]
    watermark: updated_at
    lookback: {lookback}
"""


def _project(tmp_path: Path, url: str, lake: str, warehouse: str, lookback: str = "0s", options: str = "") -> Replicator:
    path = write_project(tmp_path, sources={"app": url}, lake=lake, warehouse=warehouse,
                         tables={"events": EVENTS_YAML.format(lookback=lookback)}, source_options=options)
    return Replicator.from_path(path)


def _assert_converged(rep: Replicator, url: str) -> None:
    expected = source_rows(url, "SELECT id, payload FROM events", ["id"], ["id", "payload"])
    current = lake_current(rep, "events")
    assert_no_duplicate_keys(current, ["id"])
    assert rows_by_key(current, ["id"], ["id", "payload"]) == expected
    assert duckdb_rows(rep, "events", ["id"], ["id", "payload"]) == expected


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_late_commit_arrives_with_zero_lookback(dialect: str, tmp_path: Path, pg_url: str, mysql_url: str,
                                                s3_lake: str, duckdb_url: str) -> None:
    """A row stamped at transaction start but committed after a sync read past it still arrives."""
    url = pg_url if dialect == "postgresql" else mysql_url
    execute(url, PG_TABLE if dialect == "postgresql" else MY_TABLE)
    execute(url, "INSERT INTO events (id, payload) VALUES (1, 'first')")
    rep = _project(tmp_path, url, s3_lake, duckdb_url, lookback="0s")
    rep.sync("events")

    engine = sa.create_engine(url)
    late = engine.connect()
    late_tx = late.begin()
    stamp = "now()" if dialect == "postgresql" else "UTC_TIMESTAMP(6)"
    late.exec_driver_sql(f"INSERT INTO events (id, payload, updated_at) VALUES (2, 'late', {stamp})")
    time.sleep(1.5)  # a later writer commits rows stamped after the late row
    execute(url, "INSERT INTO events (id, payload) VALUES (3, 'after')")
    middle = rep.sync("events")
    assert middle.extract.rows_committed == 1  # row 3; row 2 is still invisible
    late_tx.commit()
    late.close()
    engine.dispose()

    final = rep.sync("events")
    assert final.extract.rows_committed == 1  # row 2 now; row 3 is not committed again
    _assert_converged(rep, url)


@pytest.mark.parametrize("lookback", ["0s", "1m"])
def test_ties_across_batch_boundaries(lookback: str, tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str) -> None:
    """Thousands of rows share one watermark value across read batches and across syncs.

    With no lookback the stored (watermark, key) cursor resumes after the last row: ties are not
    read again. With a lookback they are re-read and only the new ones are committed.
    """
    execute(pg_url, PG_TABLE,
            "INSERT INTO events SELECT g, 'v1', '2026-01-01 00:00:00+00' FROM generate_series(1, 3000) g")
    rep = _project(tmp_path, pg_url, s3_lake, duckdb_url, lookback=lookback, options="batch_rows: 500")
    assert rep.sync("events").extract.rows_committed == 3000
    execute(pg_url, "INSERT INTO events SELECT g, 'v1', '2026-01-01 00:00:00+00' FROM generate_series(3001, 5000) g")
    second = rep.sync("events")
    assert second.extract.rows_read == (2000 if lookback == "0s" else 5000)
    assert second.extract.rows_committed == 2000
    third = rep.sync("events")
    assert third.extract.rows_committed == 0 and third.extract.rows_read == (0 if lookback == "0s" else 5000)
    _assert_converged(rep, pg_url)
    raw = lake_dataset(rep, "events")
    assert raw.num_rows == 5000  # no row version stored twice


def test_failure_mid_read_commits_nothing(tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, 'a', now() FROM generate_series(1, 4000) g")
    rep = _project(tmp_path, pg_url, s3_lake, duckdb_url, options="batch_rows: 500")
    rep.project.config.lake.__dict__.update(row_group_rows=500, file_max_rows=1000)  # parts get uploaded early
    source = rep.source("app")
    real_read = type(source).read

    def dying_read(self, request: ReadRequest):  # type: ignore[no-untyped-def]
        for i, batch in enumerate(real_read(self, request)):
            if i == 5:
                raise ConnectionResetError("source went away")
            yield batch

    monkeypatch.setattr(type(source), "read", dying_read)
    with pytest.raises(ConnectionResetError):
        rep.sync("events")
    assert list_manifest_seqs(rep.lake, "events") == []
    assert lake_dataset(rep, "events").num_rows == 0  # readers see nothing of the dead run

    monkeypatch.setattr(type(source), "read", real_read)
    assert rep.sync("events").extract.rows_committed == 4000
    assert rep.lake.list_dir(f"{rep.lake.root}/events/_staging") == []
    _assert_converged(rep, pg_url)


def test_crash_between_manifest_and_publish_is_finished_by_next_run(
    tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import replicator.lake.batch as batch

    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, 'a', now() FROM generate_series(1, 100) g")
    rep = _project(tmp_path, pg_url, s3_lake, duckdb_url)
    rep.sync("events")
    execute(pg_url, "UPDATE events SET payload = 'b', updated_at = now() + interval '1 second' WHERE id <= 10")

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed after the manifest was created")

    monkeypatch.setattr(batch, "publish", crash)
    with pytest.raises(KeyboardInterrupt):
        rep.extract("events")
    monkeypatch.undo()
    assert list_manifest_seqs(rep.lake, "events") == [1, 2]  # batch 2 is committed ...
    assert lake_dataset(rep, "events").num_rows == 100  # ... but its files are not in the Hive layout yet

    loaded = rep.load("events")  # the warehouse can load a committed batch before it is published
    assert loaded.batches == [2]
    again = rep.sync("events")  # the next run finishes the move, then finds nothing new
    assert not again.extract.committed
    _assert_converged(rep, pg_url)


def test_failed_warehouse_load_rolls_back_and_reloads(tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from replicator.warehouse.duckdb import DuckDBWarehouse

    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, 'a', now() FROM generate_series(1, 50) g")
    rep = _project(tmp_path, pg_url, s3_lake, duckdb_url)
    rep.sync("events")
    execute(pg_url, "UPDATE events SET payload = 'b', updated_at = now() + interval '1 second' WHERE id <= 5")

    def broken(self, con, target, *args, **kwargs):  # type: ignore[no-untyped-def]
        con.execute(f"DELETE FROM {target}")  # damage inside the transaction, then fail
        raise RuntimeError("warehouse died mid-load")

    monkeypatch.setattr(DuckDBWarehouse, "_follow_schema", broken)
    with pytest.raises(RuntimeError):
        rep.sync("events")
    monkeypatch.undo()
    assert rep.warehouse.last_loaded_seq("events") == 1
    assert rep.warehouse.row_count("events") == 50  # the partial delete was rolled back
    assert rep.load("events").batches == [2]
    _assert_converged(rep, pg_url)


def test_reads_stream_in_bounded_batches_and_files(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    """A table ~29x the batch size is read in batches of at most batch_rows and written in bounded files."""
    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, repeat('x', 50), now() FROM generate_series(1, 20000) g")
    rep = _project(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url, options="batch_rows: 700\nchunk_rows: 7000")
    rep.project.config.lake.__dict__.update(row_group_rows=2000, file_max_rows=6000)
    table = rep.project.table("events")
    source = rep.source("app")
    sizes = [b.num_rows for b in source.read(ReadRequest(table, source.describe(table), chunked=True))]
    assert sum(sizes) == 20000 and max(sizes) <= 700 and len(sizes) >= 29

    rep.sync("events")
    manifest = load_manifest(rep.lake, "events", 1)
    assert sum(f.rows for f in manifest.files) == 20000
    assert len(manifest.files) >= 4
    for f in manifest.files:
        meta = pq.ParquetFile(f"{rep.lake.root}/events/{f.path}").metadata
        assert meta.num_rows <= 6000
        assert all(meta.row_group(i).num_rows <= 2000 for i in range(meta.num_row_groups))
        # Whole row groups: only a file's last one may be short (no sliver after every flush).
        assert all(meta.row_group(i).num_rows == 2000 for i in range(meta.num_row_groups - 1))
        # Written for readers: zstd, min/max statistics and a page index on every column, and a
        # dictionary for text only (numbers and timestamps are encoded plain).
        names = meta.schema.names
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                column = meta.row_group(g).column(c)
                assert column.compression == "ZSTD"
                assert column.is_stats_set and column.statistics.has_min_max
                assert column.has_column_index and column.has_offset_index
                assert column.has_dictionary_page == (names[c] == "payload"), names[c]
    _assert_converged(rep, pg_url)


def test_files_close_at_their_byte_target(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    """lake.file_max_bytes closes a file at the first row group that reaches it, whatever file_max_rows says."""
    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, md5(g::text) || md5((g * 7)::text), now() - interval '1 hour' "
            "FROM generate_series(1, 20000) g")
    rep = _project(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url)
    rep.project.config.lake.__dict__.update(row_group_rows=1000, file_max_bytes=parse_size("150KB"))
    rep.sync("events")
    manifest = load_manifest(rep.lake, "events", 1)
    assert len(manifest.files) >= 4 and sum(f.rows for f in manifest.files) == 20000
    for f in manifest.files[:-1]:
        meta = pq.ParquetFile(f"{rep.lake.root}/events/{f.path}").metadata
        groups = [sum(meta.row_group(i).column(c).total_compressed_size for c in range(meta.num_columns))
                  for i in range(meta.num_row_groups)]
        # It reached the target with its last row group, and not before.
        assert f.bytes >= 150_000 > sum(groups[:-1]), (f.bytes, groups)
    _assert_converged(rep, pg_url)


def test_duckdb_loads_larger_than_its_memory_limit_spill(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    """warehouse.memory_limit bounds DuckDB: a load bigger than it completes; one too big to hold says what to raise."""
    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text), "
            "now() - interval '1 hour' FROM generate_series(1, 900000) g")
    rep = _project(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url)
    rep.project.config.warehouse.__dict__.update(memory_limit="8MB")
    with pytest.raises(WarehouseError, match=r"Out of Memory.*set warehouse.memory_limit higher than 8MB"):
        rep.sync("events")
    assert rep.warehouse.last_loaded_seq("events") == 0

    rep = _project(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url)
    rep.project.config.warehouse.__dict__.update(memory_limit="64MB")  # the batch holds ~86 MB of text
    assert rep.load("events").rows_loaded == 900000
    execute(pg_url, "UPDATE events SET payload = 'v2-' || payload, updated_at = now() WHERE id % 2 = 0")
    assert rep.sync("events").load.rows_loaded == 450000
    # Equal digests over every key in order: the same rows, values and no key twice, in the lake and in DuckDB.
    digests = content_digests(rep, "events", pg_url, "events", "id", "payload")
    assert digests["source"][0] == 900000 and digests["lake"] == digests["source"] == digests["warehouse"], digests


def test_duckdb_auto_memory_limit_follows_row_group_size(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    """`auto` (the default) sizes the limit to the widest row group (not only the per-thread floor), so wide rows still load."""
    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, repeat(md5(g::text), 128), now() - interval '1 hour' "
            "FROM generate_series(1, 20000) g")
    rep = _project(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url)
    rep.project.config.lake.__dict__.update(row_group_rows=10000)  # row groups of ~40 MB
    assert rep.project.config.warehouse.memory_limit == "auto"
    lake = rep.table_lake("events")
    batch = lake.batch_dataset(lake.manifest(rep.extract("events").batch_id))
    largest = max(f.metadata.row_group(i).total_byte_size for f in batch.get_fragments()
                  for i in range(f.metadata.num_row_groups))
    assert largest > 38 * 2**20
    limit = rep.warehouse._load_memory_limit(batch, True)  # type: ignore[attr-defined]
    assert limit.endswith("MiB") and int(limit[:-3]) * 2**20 >= 3 * largest  # one group per thread and one more
    assert rep.load("events").rows_loaded == 20000
    _assert_converged(rep, pg_url)


def test_postgres_reads_are_read_only_with_timeouts(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, PG_TABLE)
    rep = _project(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url,
                   options="statement_timeout: 45s\nlock_timeout: 3s")
    source = rep.source("app")
    with source.snapshot() as conn:
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "repeatable read"
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "45s"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "3s"
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            conn.exec_driver_sql("INSERT INTO events (id) VALUES (1)")
    rep.sync("events")
    dbname = sa.engine.make_url(pg_url).database
    idle = query(pg_url, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{dbname}' "
                         "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()")
    assert idle == [(0,)]


def test_mariadb_reads_are_read_only_with_timeouts(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    execute(mysql_url, MY_TABLE)
    rep = _project(tmp_path, mysql_url, str(tmp_path / "lake"), duckdb_url, options="statement_timeout: 45s")
    source = rep.source("app")
    with source.snapshot() as conn:
        assert float(conn.exec_driver_sql("SELECT @@session.max_statement_time").scalar()) == 45.0
        assert conn.exec_driver_sql("SELECT @@session.time_zone").scalar() == "+00:00"
        with pytest.raises(sa.exc.DBAPIError, match="(?i)read only"):
            conn.exec_driver_sql("INSERT INTO events (id) VALUES (1)")


@pytest.mark.parametrize("fast", [False, True], ids=["row-path", "connectorx"])
def test_a_sync_logs_in_once_and_leaves_no_connection(fast: bool, tmp_path: Path, mysql_url: str, duckdb_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Reflection, the horizon, the NULL count and the row path's read share one login per run."""
    from replicator.sources.mysql import MySQLSource

    monkeypatch.setattr(MySQLSource, "use_arrow", fast)
    execute(mysql_url, MY_TABLE, "INSERT INTO events (id, payload) VALUES (1, 'a'), (2, 'b')")
    path = write_project(tmp_path, sources={"app": mysql_url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                         tables={"events": EVENTS_YAML.format(lookback="0s")})
    with Replicator.from_path(path) as rep:
        rep.sync("events")
    execute(mysql_url, "UPDATE events SET payload = 'b2', updated_at = UTC_TIMESTAMP(6) WHERE id = 2")
    monitor = sa.create_engine(mysql_url, poolclass=sa.pool.StaticPool)
    status = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Connections', 'Threads_connected')"
    try:
        with monitor.connect() as conn:
            before = dict(conn.exec_driver_sql(status).all())
            with Replicator.from_path(path) as rep:
                result = rep.sync("events")
            after = dict(conn.exec_driver_sql(status).all())
    finally:
        monitor.dispose()
    assert result.extract.rows_committed == 1
    logins = int(after["Connections"]) - int(before["Connections"])
    # connectorx opens its own connection per statement (a TCP login, then its socket), beside the shared one.
    assert logins == (3 if fast else 1), logins
    assert after["Threads_connected"] == before["Threads_connected"]


def test_two_runs_of_one_table_never_overlap(tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    execute(pg_url, PG_TABLE, "INSERT INTO events SELECT g, 'a', now() FROM generate_series(1, 1000) g")
    rep = _project(tmp_path, pg_url, s3_lake, duckdb_url, options="batch_rows: 100")
    source = rep.source("app")
    real_read = type(source).read
    reading, release = threading.Event(), threading.Event()

    def slow_read(self, request: ReadRequest):  # type: ignore[no-untyped-def]
        for batch in real_read(self, request):
            reading.set()
            release.wait(10)
            yield batch

    monkeypatch.setattr(type(source), "read", slow_read)
    errors: list[BaseException] = []

    def run_first() -> None:
        try:
            rep.extract("events")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    first = threading.Thread(target=run_first)
    first.start()
    assert reading.wait(10)
    other = Replicator.from_path(rep.project.path)
    with pytest.raises(LockError, match="being synced by another run"):
        other.extract("events")
    release.set()
    first.join(20)
    assert not errors
    monkeypatch.undo()
    assert list_manifest_seqs(rep.lake, "events") == [1]
    rep.load("events")
    _assert_converged(rep, pg_url)


def test_full_replication_follows_deletes(tmp_path: Path, mysql_url: str, s3_lake: str, duckdb_url: str) -> None:
    execute(mysql_url, "CREATE TABLE cities (id int PRIMARY KEY, name varchar(40))",
            "INSERT INTO cities VALUES (1, 'Lisboa'), (2, 'Porto'), (3, 'Faro')")
    path = write_project(tmp_path, sources={"app": mysql_url}, lake=s3_lake, warehouse=duckdb_url, tables={
        "cities": "source: app\ntable: cities\nprimary_key: [id]\nreplication: full\n"})
    rep = Replicator.from_path(path)
    rep.sync("cities")
    assert not rep.sync("cities").extract.committed  # unchanged content: no new batch
    execute(mysql_url, "DELETE FROM cities WHERE id = 2", "UPDATE cities SET name = 'Lisbon' WHERE id = 1")
    result = rep.sync("cities")
    assert result.extract.batch_id == 2
    expected = {(1,): (1, "Lisbon"), (3,): (3, "Faro")}
    assert rows_by_key(lake_current(rep, "cities"), ["id"], ["id", "name"]) == expected
    assert duckdb_rows(rep, "cities", ["id"], ["id", "name"]) == expected
    assert rep.read_table("cities", as_of=1).num_rows == 3  # the earlier state stays readable
