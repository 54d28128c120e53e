"""`replicator sync` runs tables side by side (`defaults.max_concurrent_tables`, `--jobs`): a table the
source keeps waiting does not hold up the others, and every table arrives whole, once.

The wait is real: another session holds an ACCESS EXCLUSIVE lock on one source table, so its extract's
first query queues behind the lock on the server while the others are read, committed and loaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg2
import pytest
from pyiceberg.catalog import sql as pyiceberg_sql

from replicator import Replicator

from ..conftest import execute, query, write_project

pytestmark = pytest.mark.integration

TABLES = ["blocked", *(f"t{i}" for i in range(1, 6))]


def _table_yml(name: str) -> str:
    return f"source: app\ntable: public.{name}\nprimary_key: [id]\nwatermark: updated_at\n"


def _waiting_on_a_lock(pg_url: str, table: str) -> bool:
    rows = query(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                         f"AND datname = current_database() AND query LIKE '%{table}%'")
    return bool(rows[0][0])


def test_a_blocked_table_does_not_hold_up_the_others(tmp_path: Path, pg_url: str) -> None:
    for i, name in enumerate(TABLES):
        execute(pg_url, f"CREATE TABLE {name} (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
                f"INSERT INTO {name} SELECT g, g * {i + 1}.25, now() - interval '1 hour' "
                f"FROM generate_series(1, {200 + i * 50}) g")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}", source_options="lock_timeout: 2m",
                            tables={name: _table_yml(name) for name in TABLES})
    holder = psycopg2.connect(pg_url.replace("postgresql+psycopg2://", "postgresql://"))
    holder.cursor().execute("LOCK TABLE blocked IN ACCESS EXCLUSIVE MODE")
    child = subprocess.Popen([sys.executable, "-m", "replicator", "--project", str(project), "sync", "--jobs", "3",
                              *TABLES], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        done = []
        while len(done) < len(TABLES) - 1:  # every table but the blocked one, while it is blocked
            line = child.stdout.readline()
            assert line, f"the sync ended early: {child.stderr.read() if child.stderr else ''}"
            done.append(line.split(":", 1)[0])
        assert sorted(done) == TABLES[1:], done
        assert child.poll() is None and _waiting_on_a_lock(pg_url, "blocked")
    finally:
        holder.rollback()
        holder.close()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.startswith("blocked: ") and "Traceback" not in err

    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as wh:
        for name in TABLES:
            source = query(pg_url, f"SELECT count(*), sum(amount) FROM {name}")[0]
            count, keys, total = wh.execute(f"SELECT count(*), count(DISTINCT id), sum(amount) FROM raw.{name}").fetchone()
            assert (count, total) == tuple(source) and keys == count, name


def test_jobs_must_be_a_positive_number(tmp_path: Path, pg_url: str) -> None:
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}", tables={})
    result = subprocess.run([sys.executable, "-m", "replicator", "--project", str(project), "sync", "--jobs", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--jobs: '0' is not a whole number of tables, 1 or more" in result.stderr
    assert not (tmp_path / "lake").exists()


def test_a_batch_an_earlier_run_left_unloaded_is_loaded_by_the_next_sync_of_many(tmp_path: Path, pg_url: str) -> None:
    """A sync of several tables looks at the warehouse's ledger once, before its extracts: a table with
    nothing new in the source but a committed batch the warehouse lacks is still loaded."""
    names = ["t1", "t2", "t3"]
    for name in names:
        execute(pg_url, f"CREATE TABLE {name} (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
                f"INSERT INTO {name} SELECT g, g, now() - interval '1 hour' FROM generate_series(1, 50) g")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}", tables={n: _table_yml(n) for n in names})
    sync = [sys.executable, "-m", "replicator", "--project", str(project), "sync", "--jobs", "2"]
    assert subprocess.run(sync, capture_output=True, text=True, timeout=120).returncode == 0
    execute(pg_url, "UPDATE t2 SET amount = 0, updated_at = now() - interval '30 minutes' WHERE id <= 5")
    with Replicator.from_path(project) as rep:
        assert rep.extract("t2").rows_committed == 5  # committed to the lake; the warehouse never loaded it

    result = subprocess.run(sync, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("t2:"))
    assert "warehouse: 5 rows loaded, 50 rows in table" in line, line
    for name in ("t1", "t3"):  # nothing to load: their figures come from the one look at the ledger
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"{name}:"))
        assert "no new batch" in line and "warehouse: 0 rows loaded, 50 rows in table" in line, line
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as wh:
        assert wh.execute("SELECT count(*), count(DISTINCT id), sum(amount = 0) FROM raw.t2").fetchone() == (50, 50, 5)
        for name in ("t1", "t3"):
            assert wh.execute(f"SELECT count(*), count(DISTINCT id), sum(amount) FROM raw.{name}").fetchone() == (
                50, 50, sum(range(1, 51)))


def test_hard_deletes_found_by_reconcile_reach_the_warehouse_when_tables_run_side_by_side(
        tmp_path: Path, pg_url: str) -> None:
    """Each table's reconcile runs on its extract's thread (and counts the warehouse's rows there) while
    other tables are being loaded on the main thread: every deletion arrives, nothing else changes."""
    names = [f"t{i}" for i in range(1, 7)]
    for name in names:
        execute(pg_url, f"CREATE TABLE {name} (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
                f"INSERT INTO {name} SELECT g, g, now() - interval '1 hour' FROM generate_series(1, 200) g")
    yml = "delete_detection: reconcile\nreconcile_every: 0s\ndelete_guard: 0.5\n"
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
                            tables={n: _table_yml(n) + yml for n in names})
    sync = [sys.executable, "-m", "replicator", "--project", str(project), "sync", "--jobs", "4"]
    assert subprocess.run(sync, capture_output=True, text=True, timeout=120).returncode == 0
    for i, name in enumerate(names):
        execute(pg_url, f"DELETE FROM {name} WHERE id % 10 = {i}")
    result = subprocess.run(sync, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as wh:
        for name in names:
            source = query(pg_url, f"SELECT count(*), sum(amount) FROM {name}")[0]
            assert wh.execute(f"SELECT count(*), count(DISTINCT id), sum(amount) FROM raw.{name}").fetchone() == (
                180, 180, source[1]), name


def test_tables_side_by_side_are_each_published_to_iceberg_once_per_batch(tmp_path: Path, pg_url: str) -> None:
    """Publication runs on each extract's thread, several at once against one SQLite catalog."""
    names = [f"t{i}" for i in range(1, 9)]
    for name in names:
        execute(pg_url, f"CREATE TABLE {name} (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
                f"INSERT INTO {name} SELECT g, g, now() - interval '1 hour' FROM generate_series(1, 300) g")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}", tables={n: _table_yml(n) for n in names})
    lake = f"  url: '{tmp_path / 'lake'}'\n"
    project.write_text(project.read_text().replace(lake, lake + "  iceberg: {}\n"))
    sync = [sys.executable, "-m", "replicator", "--project", str(project), "sync", "--jobs", "4"]
    for _ in range(2):
        result = subprocess.run(sync, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "behind" not in result.stdout + result.stderr, result.stderr
        execute(pg_url, *[f"UPDATE {n} SET amount = 0, updated_at = now() - interval '30 minutes' WHERE id <= 9"
                          for n in names])
    catalog = pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'iceberg.db'}")
    for name in names:
        table = catalog.load_table(f"lake.{name}")
        assert len(table.snapshots()) == 2, name
        change = table.scan().to_arrow()  # every row version: the full batch and the first update's
        assert change.num_rows == 300 + 9, name


def test_a_sync_of_many_into_postgres_reports_and_loads_like_one_table_at_a_time(tmp_path: Path, pg_url: str) -> None:
    """The PostgreSQL warehouse counts a table's rows only when asked: an unchanged table's line still
    gives its rows, and a changed one is loaded."""
    names = ["t1", "t2", "t3"]
    for name in names:
        execute(pg_url, f"CREATE TABLE {name} (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
                f"INSERT INTO {name} SELECT g, g, now() - interval '1 hour' FROM generate_series(1, 40) g")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=pg_url,
                            tables={n: _table_yml(n) for n in names})
    sync = [sys.executable, "-m", "replicator", "--project", str(project), "sync", "--jobs", "2"]
    assert subprocess.run(sync, capture_output=True, text=True, timeout=120).returncode == 0
    execute(pg_url, "UPDATE t3 SET amount = 0, updated_at = now() - interval '30 minutes' WHERE id <= 4")
    result = subprocess.run(sync, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = {x.split(":", 1)[0]: x for x in result.stdout.splitlines()}
    assert "warehouse: 0 rows loaded, 40 rows in table" in lines["t1"], lines
    assert "warehouse: 4 rows loaded, 40 rows in table" in lines["t3"], lines
    assert query(pg_url, "SELECT count(*), count(DISTINCT id), sum((amount = 0)::int) FROM raw.t3")[0] == (40, 40, 4)
