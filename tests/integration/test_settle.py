"""The settle rule of each watermark kind, against real PostgreSQL and MariaDB, with `lookback` 0.

Each test keeps a writer's transaction open across a sync and commits it afterwards, or changes a
row again within one watermark value, and then checks the outcome without replicator's own code:
the warehouse's rows against the source column by column, `count(*)` against `count(distinct key)`,
and the raw row versions the lake's Hive folders hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from replicator import Replicator

from ..conftest import execute, query, write_project

TABLE_YAML = """
    source: app
    table: t
    primary_key: [id]
    watermark: {watermark}
    lookback: {lookback}
"""


def _url(dialect: str, pg_url: str, mysql_url: str) -> str:
    return pg_url if dialect == "postgresql" else mysql_url


def _project(tmp_path: Path, url: str, duckdb_url: str, watermark: str, lookback: str = "0s",
             options: str = "") -> Replicator:
    path = write_project(tmp_path, sources={"app": url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                         tables={"t": TABLE_YAML.format(watermark=watermark, lookback=lookback)}, source_options=options)
    return Replicator.from_path(path)


@contextmanager
def open_transaction(url: str, *statements: str) -> Iterator[sa.Connection]:
    """A writer on its own connection whose transaction stays open until the block ends, then commits."""
    engine = sa.create_engine(url)
    conn = engine.connect()
    tx = conn.begin()
    try:
        for statement in statements:
            conn.exec_driver_sql(statement)
        yield conn
        tx.commit()
    finally:
        conn.close()
        engine.dispose()


def _warehouse(rep: Replicator, sql: str) -> list[tuple]:
    path = rep.project.config.warehouse.url.removeprefix("duckdb:///")
    con = duckdb.connect(path, read_only=True)
    try:
        return [tuple(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def _lake_versions(rep: Replicator) -> list[tuple]:
    """(id, v, _batch_id) of every row version a Hive-aware reader sees in the lake, sorted."""
    folder = Path(rep.project.config.lake.url) / "t"
    con = duckdb.connect()
    try:
        return [tuple(r) for r in con.execute(
            "SELECT id, v, _batch_id FROM read_parquet(?, hive_partitioning = true) ORDER BY id, _batch_id",
            [str(folder / "*" / "*.parquet")]).fetchall()]
    finally:
        con.close()


def _assert_equal_to_source(rep: Replicator, url: str) -> None:
    source = sorted(query(url, "SELECT id, v FROM t"))
    assert source, "the source table is empty"
    assert _warehouse(rep, "SELECT id, v FROM raw.t ORDER BY id") == source
    total, distinct = _warehouse(rep, "SELECT count(*), count(DISTINCT id) FROM raw.t")[0]
    assert total == distinct == len(source)
    # The lake's latest version per key (highest batch) equals the source as well.
    latest: dict[int, tuple[str, int]] = {}
    for key, value, batch in _lake_versions(rep):
        if key not in latest or batch > latest[key][1]:
            latest[key] = (value, batch)
    assert sorted((k, v) for k, (v, _) in latest.items()) == source


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_date_watermark_gets_same_day_changes_to_lower_keys(dialect: str, tmp_path: Path, pg_url: str,
                                                            mysql_url: str, duckdb_url: str) -> None:
    url = _url(dialect, pg_url, mysql_url)
    today = "current_date" if dialect == "postgresql" else "UTC_DATE()"
    execute(url, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20), updated_on date NOT NULL)",
            *[f"INSERT INTO t VALUES ({i}, 'v{i}', {today})" for i in range(1, 11)])
    rep = _project(tmp_path, url, duckdb_url, "updated_on")
    assert rep.sync("t").extract.rows_committed == 10

    execute(url, f"UPDATE t SET v = 'changed', updated_on = {today} WHERE id = 3",
            f"INSERT INTO t VALUES (0, 'new', {today})")
    second = rep.sync("t")
    # Today's rows are re-read (today has not ended everywhere); only the two changed ones are new.
    assert second.extract.rows_read == 11
    assert second.extract.rows_committed == 2
    assert rep.sync("t").extract.rows_committed == 0
    _assert_equal_to_source(rep, url)
    assert len(_lake_versions(rep)) == 12  # 10 + the update + the insert, nothing committed twice


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_date_watermark_late_commit_arrives(dialect: str, tmp_path: Path, pg_url: str, mysql_url: str,
                                            duckdb_url: str) -> None:
    url = _url(dialect, pg_url, mysql_url)
    today = "current_date" if dialect == "postgresql" else "UTC_DATE()"
    execute(url, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20), updated_on date NOT NULL)",
            f"INSERT INTO t VALUES (1, 'a', {today})")
    rep = _project(tmp_path, url, duckdb_url, "updated_on")
    rep.sync("t")
    with open_transaction(url, f"INSERT INTO t VALUES (2, 'late', {today})"):
        execute(url, f"INSERT INTO t VALUES (3, 'after', {today})")
        middle = rep.sync("t")
        assert middle.extract.rows_committed == 1  # row 3; row 2 is still invisible
    final = rep.sync("t")
    assert final.extract.rows_committed == 1  # row 2 now; rows 1 and 3 are not committed again
    _assert_equal_to_source(rep, url)
    assert len(_lake_versions(rep)) == 3


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_integer_watermark_late_commit_arrives(dialect: str, tmp_path: Path, pg_url: str, mysql_url: str,
                                               duckdb_url: str) -> None:
    """A transaction takes id 101 and stays open; 102 commits and is synced; 101 still arrives."""
    url = _url(dialect, pg_url, mysql_url)
    if dialect == "postgresql":
        execute(url, "CREATE TABLE t (id bigserial PRIMARY KEY, v text)",
                "INSERT INTO t (v) SELECT 'v' || g FROM generate_series(1, 100) g")
    else:
        execute(url, "CREATE TABLE t (id bigint AUTO_INCREMENT PRIMARY KEY, v varchar(20))",
                *[f"INSERT INTO t (v) VALUES ('v{i}')" for i in range(1, 101)])
    rep = _project(tmp_path, url, duckdb_url, "id", lookback="0")
    assert rep.sync("t").extract.rows_committed == 100

    with open_transaction(url, "INSERT INTO t (v) VALUES ('late')") as late:
        assert late.exec_driver_sql("SELECT max(id) FROM t").scalar_one() == 101
        execute(url, "INSERT INTO t (v) VALUES ('after')")
        assert query(url, "SELECT max(id) FROM t") == [(102,)]
        middle = rep.sync("t")
        assert middle.extract.rows_committed == 1  # 102; 101 is still invisible
        again = rep.sync("t")  # still open: 102 is re-read, not committed twice
        assert again.extract.rows_committed == 0
    final = rep.sync("t")
    assert final.extract.rows_committed == 1  # 101 at last
    assert rep.sync("t").extract.rows_committed == 0
    _assert_equal_to_source(rep, url)
    assert len(_lake_versions(rep)) == 102

    # Once nothing is open, the stored watermark settles at the highest id and reads resume after it.
    execute(url, "INSERT INTO t (v) VALUES ('settled')")
    settled = rep.sync("t")
    assert settled.extract.rows_committed == 1
    assert rep.sync("t").extract.rows_read <= 1


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_integer_watermark_first_sync_with_an_open_transaction(dialect: str, tmp_path: Path, pg_url: str,
                                                               mysql_url: str, duckdb_url: str) -> None:
    url = _url(dialect, pg_url, mysql_url)
    if dialect == "postgresql":
        execute(url, "CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
    else:
        execute(url, "CREATE TABLE t (id bigint AUTO_INCREMENT PRIMARY KEY, v varchar(20))")
    execute(url, "INSERT INTO t (v) VALUES ('a')")
    rep = _project(tmp_path, url, duckdb_url, "id", lookback="0")
    with open_transaction(url, "INSERT INTO t (v) VALUES ('late')"):
        execute(url, "INSERT INTO t (v) VALUES ('after')")
        first = rep.sync("t")
        assert first.extract.rows_committed == 2
        assert first.extract.watermark_after is None  # nothing is known settled: the next read is complete
    second = rep.sync("t")
    assert second.extract.mode == "full" and second.extract.rows_committed == 3
    assert second.extract.watermark_after == 3
    assert rep.sync("t").extract.rows_read <= 1  # settled now: the read resumes after id 3
    _assert_equal_to_source(rep, url)


def test_integer_watermark_late_commit_arrives_after_a_fresh_innodb_trx_reading(
        tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    """InnoDB refreshes INNODB_TRX only once nobody has read it for 0.1 s. Another client reads it right
    before a writer opens its transaction and right before the sync: the sync must still see the writer
    (before, it took the stale reading, advanced the watermark past the open row, and lost it)."""
    execute(mysql_url, "CREATE TABLE t (id bigint AUTO_INCREMENT PRIMARY KEY, v varchar(20))",
            "INSERT INTO t (v) VALUES ('a')")
    rep = _project(tmp_path, mysql_url, duckdb_url, "id", lookback="0")
    assert rep.sync("t").extract.rows_committed == 1
    poller = sa.create_engine(mysql_url)
    with poller.connect() as watch:
        def read_innodb_trx() -> None:
            watch.exec_driver_sql("SELECT count(*) FROM information_schema.INNODB_TRX").all()

        read_innodb_trx()
        with open_transaction(mysql_url, "INSERT INTO t (v) VALUES ('late')"):
            execute(mysql_url, "INSERT INTO t (v) VALUES ('after')")
            read_innodb_trx()
            rep.sync("t")
    poller.dispose()
    rep.sync("t")
    _assert_equal_to_source(rep, mysql_url)
    assert sorted(k for k, _, _ in _lake_versions(rep)) == [1, 2, 3]  # each row version once


def test_whole_second_datetime_changed_twice_in_one_second(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    """DATETIME without fractions ties within a second: the second change is compared by content."""
    execute(mysql_url, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20), updated_at datetime NOT NULL)",
            "INSERT INTO t VALUES (1, 'first', UTC_TIMESTAMP()), (2, 'other', UTC_TIMESTAMP())")
    # A margin wider than the test's own duration keeps the stamp unsettled however slow the machine.
    rep = _project(tmp_path, mysql_url, duckdb_url, "updated_at", options="settle_margin: 30s")
    rep.sync("t")
    # The same stamp again: what a second write within the same second stores.
    execute(mysql_url, "UPDATE t SET v = 'second' WHERE id = 1")
    assert rep.sync("t").extract.rows_committed == 1
    _assert_equal_to_source(rep, mysql_url)
