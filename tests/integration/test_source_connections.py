"""One sync of many PostgreSQL tables opens a handful of sessions on the source, not one per table, and
a session the server ended while it sat idle, or one whose read failed, is never used again.

Sessions are counted by the server itself (`pg_stat_database.sessions`, every session ever established
to the test database), and every table arrives whole in the warehouse.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from replicator import Replicator
from replicator.cli import main
from replicator.errors import SourceError

from ..conftest import execute, query, write_project

pytestmark = pytest.mark.integration

TABLES = [f"t{i}" for i in range(1, 7)]


def _table_yml(name: str) -> str:
    return f"source: app\ntable: public.{name}\nprimary_key: [id]\nwatermark: updated_at\n"


def _make(pg_url: str, tmp_path: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        execute(pg_url, f"CREATE TABLE {name} (id int PRIMARY KEY, day date, amount numeric(10,2), "
                        "updated_at timestamptz NOT NULL)",
                f"INSERT INTO {name} SELECT g, date '2026-11-01' + g % 20, g * {i + 1}.25, now() - interval '1 hour' "
                f"FROM generate_series(1, {100 + 10 * i}) g")
    return write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                         warehouse=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
                         tables={n: _table_yml(n) for n in names})


def _sessions(pg_url: str) -> int:
    """Sessions ever established to the test database (this query's own is on the admin database)."""
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    database = pg_url.rsplit("/", 1)[1]
    seen = -1
    for _ in range(50):  # the statistics reach the view within moments of the sessions' start
        (now,), = query(admin, f"SELECT sessions FROM pg_stat_database WHERE datname = '{database}'")
        if now == seen:
            return int(now)
        seen = now
        time.sleep(0.2)
    return int(seen)


def _assert_whole(tmp_path: Path, pg_url: str, names: list[str]) -> None:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as wh:
        for name in names:
            source = query(pg_url, f"SELECT count(*), sum(amount) FROM {name}")[0]
            assert wh.execute(f"SELECT count(*), count(DISTINCT id), sum(amount) FROM raw.{name}").fetchone() == (
                source[0], source[0], source[1]), name


def test_a_sync_of_many_tables_opens_a_few_source_sessions(tmp_path: Path, pg_url: str) -> None:
    project = _make(pg_url, tmp_path, TABLES)
    before = _sessions(pg_url)
    assert main(["--project", str(project), "sync", "--jobs", "1"]) == 0
    opened = _sessions(pg_url) - before
    # One pooled SQLAlchemy session for the probes and one ADBC session for the reads (the settle clock
    # may take another); before the ADBC sessions were kept, each table's read opened its own.
    assert 1 <= opened <= 3, f"{opened} sessions for {len(TABLES)} tables"
    _assert_whole(tmp_path, pg_url, TABLES)


def test_sessions_ended_while_idle_or_failed_are_replaced(tmp_path: Path, pg_url: str) -> None:
    project = _make(pg_url, tmp_path, ["t1", "t2", "t3"])
    execute(pg_url, "CREATE TABLE broken (id int PRIMARY KEY, day date, amount numeric(10,2), "
                    "updated_at timestamptz NOT NULL)",
            "INSERT INTO broken VALUES (1, 'infinity', 1, now() - interval '1 hour')")
    (project.parent / "schemas" / "broken.yml").write_text(_table_yml("broken"))
    with Replicator.from_path(project) as rep:
        rep.sync("t1")
        with pytest.raises(SourceError, match="infinity"):
            rep.sync("broken")  # fails mid-read: its session must not serve the next table
        rep.sync("t2")
        # The server ends every idle session of the database (a restart, an idle timeout, an operator).
        ended = query(pg_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'")
        assert ended[0][0] >= 1
        rep.sync("t3")
    _assert_whole(tmp_path, pg_url, ["t1", "t2", "t3"])
