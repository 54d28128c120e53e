"""Connections lost under a sync: the source backend killed mid-stream, the warehouse unreachable or locked."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from replicator import Replicator
from replicator.errors import ReplicatorError, SourceError, WarehouseUnavailable
from replicator.lake import list_manifest_seqs
from replicator.sources.base import SqlSource
from replicator.sources.mysql import MySQLSource
from replicator.sources.postgres import PostgresSource

from ..conftest import execute, query
from ..integration.helpers import lake_dataset
from .common import (
    assert_converged,
    assert_only_committed_visible,
    create_events,
    insert_rows,
    staging_entries,
    update_rows,
    write_project,
)

pytestmark = pytest.mark.integration

ROWS = 5_000


def _seed(url: str, dialect: str) -> str:
    """5000 rows of ~170 bytes; returns what the sync reads.

    MariaDB's reader (connectorx) fetches a fast result completely before it hands out the first batch,
    so there the sync reads a view that sleeps 1 ms per row: the statement is still streaming when the
    test kills its connection. PostgreSQL's readers keep their snapshot open until the last batch.
    """
    create_events(url)
    if dialect == "postgresql":
        execute(url, "INSERT INTO events SELECT g, repeat('x', 160) || g, "
                     "timestamptz '2026-01-01 00:00:00+00' + (g % 3) * interval '1 day', now() "
                     f"FROM generate_series(1, {ROWS}) g")
    else:
        execute(url, "INSERT INTO events SELECT seq, CONCAT(REPEAT('x', 160), seq), "
                     "TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (seq % 3) DAY, UTC_TIMESTAMP(6) "
                     f"FROM seq_1_to_{ROWS}")
        execute(url, "CREATE VIEW events_slow AS SELECT * FROM events WHERE SLEEP(0.001) = 0")
        return "events_slow"
    return "events"


def _kill_reader(url: str, dialect: str) -> list[Any]:
    """Terminate the sync's read connection from the server side; returns the killed ids."""
    database = sa.engine.make_url(url).database
    if dialect == "postgresql":
        # The test's database is its own: any other client session in it is the sync's reader.
        pids = [r[0] for r in query(url, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                         f"AND datname = '{database}' AND pid <> pg_backend_pid()")]
        for pid in pids:
            query(url, f"SELECT pg_terminate_backend({pid})")
        return pids
    ids = [r[0] for r in query(url, "SELECT ID FROM information_schema.PROCESSLIST "
                                    f"WHERE DB = '{database}' AND ID <> CONNECTION_ID()")]
    for conn_id in ids:
        execute(url, f"KILL {int(conn_id)}")
    return ids


@pytest.fixture()
def slowed_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event, Any]]:
    """SqlSource.read sleeps between batches; after the 2nd batch it waits until the test killed the
    connection (`killed`), so the kill lands mid-stream, between two fetches of one open snapshot."""
    reading, killed = threading.Event(), threading.Event()
    real_read = SqlSource.read

    def read(self: SqlSource, request: Any) -> Iterator[Any]:
        for i, batch in enumerate(real_read(self, request), 1):
            yield batch
            time.sleep(0.01)
            if i == 2:
                reading.set()
                killed.wait(15)

    monkeypatch.setattr(SqlSource, "read", read)
    yield reading, killed, real_read


@pytest.mark.parametrize("path", ["arrow", "rows"])
@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_source_connection_killed_mid_stream_commits_nothing(
    dialect: str, path: str, request: pytest.FixtureRequest, tmp_path: Path, duckdb_url: str,
    slowed_read: tuple[threading.Event, threading.Event, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`arrow`: the default fast readers (ADBC, connectorx); `rows`: the SQLAlchemy row path."""
    url = request.getfixturevalue("pg_url" if dialect == "postgresql" else "mysql_url")
    reader = PostgresSource if dialect == "postgresql" else MySQLSource
    monkeypatch.setattr(reader, "use_arrow", path == "arrow")
    read_from = _seed(url, dialect)
    project = write_project(tmp_path / "project", source=url, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            batch_rows=500, row_group_rows=1000, file_max_rows=2000, source_table=read_from)
    reading, killed, _ = slowed_read
    outcome: list[BaseException | None] = []

    def run() -> None:
        with Replicator.from_path(project) as rep:
            try:
                rep.sync("events")
                outcome.append(None)
            except BaseException as exc:  # inspected below
                outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert reading.wait(30), "the sync never got to its 2nd batch"
    victims = _kill_reader(url, dialect)
    killed.set()
    thread.join(60)
    assert not thread.is_alive()
    assert victims, "no read connection found to kill"
    error = outcome[0]
    assert error is not None, "the sync succeeded although its source connection was killed mid-read"
    assert isinstance(error, SourceError), (
        f"a raw driver error escaped: {type(error).__module__}.{type(error).__name__}: {error}\n"
        + "".join(traceback.format_exception(error))[-2500:])

    monkeypatch.setattr(SqlSource, "read", slowed_read[2])  # reads at full speed again
    if read_from != "events":
        execute(url, f"CREATE OR REPLACE VIEW {read_from} AS SELECT * FROM events")
    rep = Replicator.from_path(project)
    assert list_manifest_seqs(rep.lake, "events") == []  # nothing committed ...
    assert lake_dataset(rep, "events").num_rows == 0  # ... nothing visible ...
    assert staging_entries(rep) == []  # ... and the parts already written were removed
    assert rep.warehouse.last_loaded_seq("events") == 0

    result = rep.sync("events")
    assert result.extract.rows_committed == ROWS
    assert_converged(rep, url)
    # Last, so the checks above run either way: a dropped connection is transient (errors.py), and an
    # orchestrator decides on `retriable` whether to retry.
    assert error.retriable, f"a dropped source connection surfaced as a permanent error: {error!r}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_postgres_warehouse_after_commit_then_loads(tmp_path: Path, pg_url: str, s3_lake: str,
                                                                pg_warehouse: str) -> None:
    create_events(pg_url)
    insert_rows(pg_url, 1, 500)
    dead = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    broken = write_project(tmp_path / "broken", source=pg_url, lake=s3_lake, warehouse=dead)
    with Replicator.from_path(broken) as rep, pytest.raises(WarehouseUnavailable) as caught:
        rep.sync("events")
    assert caught.value.retriable
    rep = Replicator.from_path(broken)
    assert list_manifest_seqs(rep.lake, "events") == [1]  # the lake batch was committed before the load failed
    assert lake_dataset(rep, "events").num_rows == 500

    update_rows(pg_url, 1, 50, "v2")
    with Replicator.from_path(broken) as rep, pytest.raises(WarehouseUnavailable):
        rep.sync("events")  # batch 2 is committed too, still not loaded

    fixed = write_project(tmp_path / "fixed", source=pg_url, lake=s3_lake, warehouse=pg_warehouse)
    with Replicator.from_path(fixed) as rep:
        result = rep.sync("events")
        assert not result.extract.committed
        assert result.load.batches == [1, 2]
        assert_converged(rep, pg_url)


def test_locked_duckdb_warehouse_after_commit_then_loads(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    """Another process holds DuckDB's single-writer lock: the load fails retriably, the next run loads."""
    create_events(mysql_url)
    insert_rows(mysql_url, 1, 300)
    project = write_project(tmp_path / "project", source=mysql_url, lake=str(tmp_path / "lake"), warehouse=duckdb_url)
    path = duckdb_url.removeprefix("duckdb:///")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys, time; c = duckdb.connect({path!r}); print('held', flush=True); "
                               "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with Replicator.from_path(project) as rep:
            with pytest.raises(ReplicatorError) as caught:
                rep.sync("events")
            assert isinstance(caught.value, WarehouseUnavailable), repr(caught.value)
            assert list_manifest_seqs(rep.lake, "events") == [1]
            assert_only_committed_visible(rep)
    finally:
        holder.communicate("", timeout=30)
    with Replicator.from_path(project) as rep:
        assert rep.sync("events").load.batches == [1]
        assert_converged(rep, mysql_url)


def test_a_postgresql_source_that_never_answers_fails_and_the_run_ends(tmp_path: Path) -> None:
    """A server that takes the TCP connection but never answers (a hung host, a black-holed proxy): the
    sync fails as a retriable source error and the run ends, its read's connection given up after the
    same connect timeout as the probes' (that connection is opened in the background while the table is
    described, and closing the source waits for it)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # connections wait in the backlog: accepted by the kernel, never answered
        port = server.getsockname()[1]
        project = write_project(tmp_path, source=f"postgresql://postgres@127.0.0.1:{port}/app",
                                lake=str(tmp_path / "lake"), warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}")
        caught: list[BaseException] = []

        def run() -> None:
            try:
                with Replicator.from_path(project) as rep:
                    rep.sync("events")
            except BaseException as exc:  # asserted below
                caught.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(90)
        assert not thread.is_alive(), "the sync (or closing its source) never returned"
    assert len(caught) == 1 and isinstance(caught[0], SourceError) and caught[0].retriable, caught
    assert not (tmp_path / "lake" / "events" / "_manifests").exists() or \
        not any((tmp_path / "lake" / "events" / "_manifests").iterdir())
