"""Syncs while applications keep writing: short transactions and a long one that commits late.

`lookback: 0s` everywhere, so only the settle horizon stands between a late commit and a lost row.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from replicator import Replicator

from ..conftest import execute
from .common import assert_converged, create_events, insert_rows, now_sql, write_project

pytestmark = pytest.mark.integration

SEED = 500
SYNCS = 5


class Writers:
    """Two writer threads on the source; `stop()` joins them and re-raises the first error."""

    def __init__(self, url: str, dialect: str) -> None:
        self.url, self.dialect = url, dialect
        self.engine = sa.create_engine(url, pool_size=4)
        self.ids = itertools.count(100_001)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.commits = {"short": 0, "long": 0}
        self.threads = [threading.Thread(target=self._guard(self._short), name="short-writer"),
                        threading.Thread(target=self._guard(self._long), name="long-writer")]

    def new_id(self) -> int:
        with self.lock:
            return next(self.ids)

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # re-raised by stop()
                self.errors.append(exc)
        return run

    def _payload(self, tag: str) -> str:
        return f"'{tag}-' || id" if self.dialect == "postgresql" else f"CONCAT('{tag}-', id)"

    def _short(self) -> None:
        """Many small transactions: 2 inserts and 3 updates of ids 1..250, stamped with the database clock."""
        rng, now = random.Random(1), now_sql(self.dialect)
        for n in itertools.count():
            if self.done.is_set():
                return
            with self.engine.begin() as conn:
                for _ in range(2):
                    conn.exec_driver_sql(f"INSERT INTO events VALUES ({self.new_id()}, 'short-{n}', "
                                         f"'2026-01-02 00:00:00', {now})")
                ids = ", ".join(str(rng.randint(1, SEED // 2)) for _ in range(3))
                conn.exec_driver_sql(f"UPDATE events SET payload = {self._payload(f's{n}')}, updated_at = {now} "
                                     f"WHERE id IN ({ids})")
            self.commits["short"] += 1
            time.sleep(0.01)

    def _long(self) -> None:
        """Transactions held open ~2 s whose rows all carry the stamp of their first statement (their start):
        new rows and updates of ids 251..500, committed long after other writers' later stamps."""
        rng = random.Random(2)
        for n in itertools.count():
            if self.done.is_set():
                return
            with self.engine.begin() as conn:
                first = self.new_id()
                conn.exec_driver_sql(f"INSERT INTO events VALUES ({first}, 'long-{n}', '2026-01-03 00:00:00', "
                                     f"{now_sql(self.dialect)})")
                stamp = conn.exec_driver_sql(f"SELECT updated_at FROM events WHERE id = {first}").scalar_one()
                self.done.wait(2.0)
                for _ in range(3):
                    conn.execute(sa.text("INSERT INTO events VALUES (:id, :p, '2026-01-03 00:00:00', :t)"),
                                 {"id": self.new_id(), "p": f"long-{n}", "t": stamp})
                for i in rng.sample(range(SEED // 2 + 1, SEED + 1), 3):
                    conn.execute(sa.text("UPDATE events SET payload = :p, updated_at = :t WHERE id = :id"),
                                 {"p": f"l{n}-{i}", "t": stamp, "id": i})
            self.commits["long"] += 1

    def start(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join(30)
        self.engine.dispose()
        if self.errors:
            raise self.errors[0]


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_syncs_during_live_writes_converge_after_writers_stop(dialect: str, request: pytest.FixtureRequest,
                                                              tmp_path: Path, duckdb_url: str) -> None:
    url = request.getfixturevalue("pg_url" if dialect == "postgresql" else "mysql_url")
    create_events(url)
    insert_rows(url, 1, SEED)
    project = write_project(tmp_path / "project", source=url, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            batch_rows=200, row_group_rows=500, file_max_rows=1000, partition_by=None)
    rep = Replicator.from_path(project)
    writers = Writers(url, dialect).start()
    started = time.monotonic()
    try:
        for _ in range(SYNCS):
            rep.sync("events")
            time.sleep(0.8)
    finally:
        writers.stop()
    assert writers.commits["long"] >= 2 and writers.commits["short"] >= 20, writers.commits
    assert time.monotonic() - started < 25

    rep.sync("events")
    assert_converged(rep, url)
    rep.close()


def test_postgres_transaction_that_reads_before_it_writes_is_not_lost(tmp_path: Path, pg_url: str,
                                                                       duckdb_url: str) -> None:
    """A transaction that starts with a read has no transaction id until its first write, but its now()
    is its start: its rows are stamped before a sync that ran meanwhile. The README's assumption holds
    (the database clock, at or after the transaction start), and guarantee 1 says such a late commit
    arrives with lookback 0s."""
    create_events(pg_url)
    insert_rows(pg_url, 1, 10)
    project = write_project(tmp_path / "project", source=pg_url, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            partition_by=None)
    rep = Replicator.from_path(project)
    rep.sync("events")

    engine = sa.create_engine(pg_url)
    late = engine.connect()
    tx = late.begin()
    late.exec_driver_sql("SELECT count(*) FROM events").scalar_one()  # e.g. a check before the write
    time.sleep(1.5)
    execute(pg_url, "INSERT INTO events VALUES (11, 'after', '2026-01-01', now())")  # commits after its start
    assert rep.sync("events").extract.rows_committed == 1
    late.exec_driver_sql("INSERT INTO events VALUES (12, 'late', '2026-01-01', now())")  # now() = its start
    tx.commit()
    late.close()
    engine.dispose()

    rep.sync("events")
    assert_converged(rep, pg_url)
    rep.close()
