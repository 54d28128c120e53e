"""The `replicator` command end to end, run as a user runs it: a child process, its exit code and output.

Sources are the real PostgreSQL and MariaDB servers; lakes are local folders (one test uses the moto S3
server); the warehouse is DuckDB. Every user error must end in a clear line, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from ..conftest import PG_ADMIN_URL, execute, query, write_project

pytestmark = pytest.mark.integration

DEMO_TABLES = ["cities", "drivers", "riders", "rides", "payments"]


# -- helpers -------------------------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60,
            project: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m replicator [--project P] ARGS...` in a child process, as a user would type it."""
    argv = [sys.executable, "-m", "replicator"]
    if project is not None:
        argv += ["--project", str(project)]
    return subprocess.run([*argv, *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ) if env is None else dict(env), timeout=timeout)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, output(result)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def env_without(*names: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in names:
        env.pop(name, None)
    return env


RIDES_DDL = (
    "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int NOT NULL, price numeric(12,2), status text,"
    " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)"
)


def setup_rides(pg_url: str, n: int = 200) -> None:
    """public.rides with n rows last updated an hour ago (well before any settle horizon)."""
    execute(
        pg_url,
        RIDES_DDL,
        f"INSERT INTO rides SELECT g, g % 5, (g * 1.5)::numeric(12,2), 'requested',"
        f" now() - interval '2 hours' - (g || ' seconds')::interval, now() - interval '1 hour'"
        f" FROM generate_series(1, {n}) g",
    )


RIDES_YML = """
    source: app
    table: public.rides
    primary_key: [id]
    watermark: updated_at
    lookback: 1m
"""


def pg_project(folder: Path, pg_url: str, tables: dict[str, str], *, lake: str | None = None) -> Path:
    return write_project(folder, sources={"app": pg_url}, lake=lake or str(folder / "lake"),
                         warehouse=f"duckdb:///{folder / 'warehouse.duckdb'}", tables=tables)


def status_json(project: Path, cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, dict]:
    result = run_cli("status", "--json", cwd=cwd, project=project, env=env)
    assert result.returncode == 0, output(result)
    return {row["table"]: row for row in json.loads(result.stdout)}


def sync_line(stdout: str, name: str) -> str:
    found = [line for line in stdout.splitlines() if line.startswith(f"{name}: ")]
    assert len(found) == 1, stdout
    return found[0]


# -- demo -----------------------------------------------------------------------------------------------------


def test_demo_runs_end_to_end_and_reruns(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = run_cli("demo", "--dir", str(folder), cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert_no_traceback(result)
    out = result.stdout
    assert "== full sync" in out and "== incremental sync" in out, out
    full, incremental = out.split("== full sync", 1)[1].split("== incremental sync", 1)
    for name in DEMO_TABLES:
        assert re.search(rf"^\s+{name}\s+[\d,]+ rows read, +[\d,]+ committed \(batch 1, \d+ files\)", full, re.M), out
        assert re.search(rf"^\s+{name}\s+[\d,]+ rows read, +[\d,]+ committed \((batch 2|no new batch)", incremental,
                         re.M), out
    # Changed tables got a second batch; the full-copy `cities` did not change.
    assert re.search(r"^\s+rides\s+.*\(batch 2,", incremental, re.M), out
    assert re.search(r"^\s+cities\s+.*\(no new batch,", incremental, re.M), out

    partitions = [p.name for p in (folder / "lake" / "rides").iterdir() if p.name.startswith("dt=")]
    assert partitions, list((folder / "lake" / "rides").iterdir())
    assert all(re.fullmatch(r"dt=\d{4}-\d{2}-\d{2}", p) for p in partitions), partitions
    assert all(any((folder / "lake" / "rides" / p).glob("*.parquet")) for p in partitions)

    con = sqlite3.connect(folder / "app.db")
    try:
        source_rides = con.execute("SELECT count(*) FROM rides").fetchone()[0]
    finally:
        con.close()
    wh = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
    try:
        warehouse_rides = wh.execute("SELECT count(*) FROM raw.rides").fetchone()[0]
    finally:
        wh.close()
    assert source_rides > 0 and warehouse_rides == source_rides

    # The printed Iceberg one-liner reads the current state: per status, the source's count of rides.
    line = next(x for x in out.splitlines() if x.startswith("read Iceberg:"))
    command = re.search(r'python -c "(.+?)"', line)
    assert command is not None, line
    read = subprocess.run([sys.executable, "-c", command.group(1)], capture_output=True, text=True, cwd=tmp_path)
    assert read.returncode == 0, read.stderr
    printed = dict(re.findall(r"│ (\w+)\s+│\s+(\d+) │", read.stdout))
    con = sqlite3.connect(folder / "app.db")
    try:
        by_status = dict(con.execute("SELECT status, count(*) FROM rides GROUP BY status").fetchall())
    finally:
        con.close()
    assert {k: int(v) for k, v in printed.items()} == by_status, read.stdout

    status = run_cli("--project", str(folder), "status", cwd=tmp_path)
    assert status.returncode == 0, output(status)
    rows = lines(status.stdout)
    assert rows[0].split()[0] == "table"
    assert sorted(r.split()[0] for r in rows[1:]) == sorted(DEMO_TABLES), status.stdout

    # Again in the same folder: the earlier demo (and anything left in it) is replaced.
    (folder / "leftover.txt").write_text("from the first run")
    again = run_cli("demo", "--dir", str(folder), cwd=tmp_path)
    assert again.returncode == 0, output(again)
    assert "== incremental sync" in again.stdout
    assert not (folder / "leftover.txt").exists()
    wh = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
    try:
        con = sqlite3.connect(folder / "app.db")
        try:
            assert wh.execute("SELECT count(*) FROM raw.rides").fetchone()[0] == \
                con.execute("SELECT count(*) FROM rides").fetchone()[0]
        finally:
            con.close()
    finally:
        wh.close()


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    result = run_cli("demo", "--dir", str(folder), cwd=tmp_path)
    assert result.returncode != 0, output(result)
    assert_no_traceback(result)
    assert "not a replicator demo folder" in result.stderr and str(folder) in result.stderr, output(result)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "precious"


# -- validate -------------------------------------------------------------------------------------------------


def test_validate_good_project(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url)
    project = pg_project(tmp_path, pg_url, {"rides": RIDES_YML})
    result = run_cli("validate", cwd=tmp_path, project=project)
    assert result.returncode == 0, output(result)
    assert result.stdout.startswith("ok: 1 tables"), output(result)
    assert result.stderr == ""


def test_validate_reports_each_live_problem_on_its_own_line(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url)
    execute(pg_url, "CREATE TABLE cities (id int PRIMARY KEY, name text)")
    project = pg_project(tmp_path, pg_url, {
        "rides": RIDES_YML,
        "cities": """
            source: app
            table: public.cities
            primary_key: [id]
            watermark: modified_on
        """,
        "ghosts": """
            source: app
            table: public.ghosts
            primary_key: [id]
            replication: full
        """,
    })
    result = run_cli("validate", cwd=tmp_path, project=project)
    assert result.returncode != 0, output(result)
    assert_no_traceback(result)
    problems = lines(result.stderr)
    assert len(problems) == 2, output(result)
    cities = tmp_path / "schemas" / "cities.yml"
    ghosts = tmp_path / "schemas" / "ghosts.yml"
    [wm_line] = [p for p in problems if str(cities) in p]
    assert "watermark" in wm_line and "modified_on" in wm_line, wm_line
    [missing] = [p for p in problems if str(ghosts) in p]
    assert "public.ghosts" in missing and "not found" in missing, missing
    assert not any("rides.yml" in p for p in problems)


def test_validate_typo_key_suggests_the_right_one(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url)
    project = pg_project(tmp_path, pg_url, {"rides": """
        source: app
        table: public.rides
        primry_key: [id]
        watermark: updated_at
    """})
    result = run_cli("validate", cwd=tmp_path, project=project)
    assert result.returncode != 0, output(result)
    assert_no_traceback(result)
    file = str(tmp_path / "schemas" / "rides.yml")
    [typo] = [line for line in lines(result.stderr) if "primry_key" in line]
    assert file in typo and "primary_key" in typo.split("primry_key", 1)[1], typo
    assert all(file in line for line in lines(result.stderr)), output(result)


def test_validate_missing_env_var_names_file_key_and_variable(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url)
    project = write_project(tmp_path, sources={"app": "postgresql://postgres:${PGPASS}@127.0.0.1/x"},
                            lake=str(tmp_path / "lake"), warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
                            tables={"rides": RIDES_YML})
    result = run_cli("validate", cwd=tmp_path, project=project, env=env_without("PGPASS"))
    assert result.returncode != 0, output(result)
    assert_no_traceback(result)
    [line] = lines(result.stderr)
    assert str(project) in line and "sources.app.url" in line and "PGPASS" in line, line


def test_validate_unreachable_host_is_one_clear_line(tmp_path: Path, pg_url: str) -> None:
    project = pg_project(tmp_path, "postgresql://postgres@127.0.0.1:1/x", {"rides": RIDES_YML, "other": """
        source: app
        table: public.other
        primary_key: [id]
        replication: full
    """})
    started = time.monotonic()
    result = run_cli("validate", cwd=tmp_path, project=project, timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode != 0, output(result)
    assert_no_traceback(result)
    assert elapsed < 15, elapsed
    # One line for the source, not one per table that uses it.
    [line] = lines(result.stderr)
    assert str(project) in line and "sources.app" in line and "cannot connect" in line and "port 1" in line, line


def test_validate_unknown_lake_scheme(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url)
    project = pg_project(tmp_path, pg_url, {"rides": RIDES_YML}, lake="gs://bucket/x")
    result = run_cli("validate", cwd=tmp_path, project=project)
    assert result.returncode != 0, output(result)
    assert_no_traceback(result)
    [line] = lines(result.stderr)
    assert str(project) in line and "lake.url" in line and "'gs'" in line, line


def test_validate_non_numeric_port_is_a_clean_error(tmp_path: Path, pg_url: str) -> None:
    """A typo in the port is a config error like any other: a line naming the key, no traceback."""
    setup_rides(pg_url)
    project = pg_project(tmp_path, "postgresql://postgres@127.0.0.1:54x32/x", {"rides": RIDES_YML})
    for command in (["validate"], ["sync"]):
        result = run_cli(*command, cwd=tmp_path, project=project)
        assert result.returncode != 0, output(result)
        assert_no_traceback(result)
        assert "sources.app" in result.stderr and "url" in result.stderr, output(result)


# -- sync -----------------------------------------------------------------------------------------------------


def test_sync_keeps_going_past_a_broken_table(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url, 150)
    execute(pg_url, "CREATE TABLE payments (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
            "INSERT INTO payments SELECT g, g, now() - interval '1 hour' FROM generate_series(1, 10) g")
    project = pg_project(tmp_path, pg_url, {"rides": RIDES_YML, "payments": """
        source: app
        table: public.payments
        primary_key: [id]
        watermark: updated_at
    """})
    assert run_cli("validate", cwd=tmp_path, project=project).returncode == 0
    execute(pg_url, "DROP TABLE payments")

    result = run_cli("sync", cwd=tmp_path, project=project)
    assert result.returncode == 1, output(result)
    assert_no_traceback(result)
    line = sync_line(result.stdout, "rides")
    assert "150 rows extracted" in line and "150 committed" in line and "batch 1" in line, line
    assert "payments" not in result.stdout
    failed = [line for line in lines(result.stderr) if line.startswith("payments: FAILED")]
    assert len(failed) == 1 and "public.payments" in failed[0], output(result)
    assert "1 of 2 tables failed" in result.stderr
    status = status_json(project, tmp_path)
    assert status["rides"]["last_batch_id"] == 1 and status["rides"]["warehouse_rows"] == 150
    assert status["payments"]["last_batch_id"] is None


def test_sync_by_name_is_idempotent_and_full_refresh_commits(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url, 120)
    execute(pg_url, "CREATE TABLE cities (id int PRIMARY KEY, name text)", "INSERT INTO cities VALUES (1, 'Oslo')")
    project = pg_project(tmp_path, pg_url, {"rides": RIDES_YML, "cities": """
        source: app
        table: public.cities
        primary_key: [id]
        replication: full
    """})
    first = run_cli("sync", "rides", cwd=tmp_path, project=project)
    assert first.returncode == 0, output(first)
    assert "batch 1" in sync_line(first.stdout, "rides")
    assert "cities" not in first.stdout + first.stderr
    status = status_json(project, tmp_path)
    assert status["rides"]["last_batch_id"] == 1 and status["cities"]["last_batch_id"] is None
    assert not (tmp_path / "lake" / "cities").exists() or not any((tmp_path / "lake" / "cities").rglob("*.parquet"))

    second = run_cli("sync", "rides", cwd=tmp_path, project=project)
    assert second.returncode == 0, output(second)
    line = sync_line(second.stdout, "rides")
    assert "0 committed" in line and "no new batch" in line and "120 rows in table" in line, line

    refresh = run_cli("sync", "rides", "--full-refresh", cwd=tmp_path, project=project)
    assert refresh.returncode == 0, output(refresh)
    line = sync_line(refresh.stdout, "rides")
    assert "120 rows extracted" in line and "120 committed" in line and "batch 2" in line, line
    assert "120 rows in table" in line
    status = status_json(project, tmp_path)
    assert status["rides"]["last_batch_id"] == 2 and status["rides"]["warehouse_batch_id"] == 2
    assert status["rides"]["lake_rows"] == 120 and status["rides"]["warehouse_rows"] == 120

    unknown = run_cli("sync", "nope", cwd=tmp_path, project=project)
    assert unknown.returncode != 0, output(unknown)
    assert_no_traceback(unknown)
    assert "nope" in unknown.stderr and "known tables" in unknown.stderr


def test_unlock_removes_a_lease_from_another_machine_but_not_a_live_one(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url, 50)
    project = pg_project(tmp_path, pg_url, {"rides": RIDES_YML})
    lease = tmp_path / "lake" / "rides" / "_state" / "lease.json"
    lease.parent.mkdir(parents=True)
    expires = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
    # A run on another machine that died holding the lease: nothing here can tell it is gone.
    lease.write_text(json.dumps({"run_id": "r-elsewhere", "host": "worker-7", "pid": 4242,
                                 "acquired_at": "2026-01-01T00:00:00+00:00", "expires_at": expires}))
    blocked = run_cli("sync", "rides", cwd=tmp_path, project=project)
    assert blocked.returncode == 1, output(blocked)
    assert "being synced by another run (r-elsewhere on worker-7, pid 4242)" in blocked.stderr, output(blocked)
    assert "`replicator unlock rides`" in blocked.stderr
    assert status_json(project, tmp_path)["rides"]["last_batch_id"] is None

    unlocked = run_cli("unlock", "rides", cwd=tmp_path, project=project)
    assert unlocked.returncode == 0, output(unlocked)
    assert "rides: removed the lease of run r-elsewhere (host worker-7, pid 4242" in unlocked.stdout
    assert not lease.exists()
    synced = run_cli("sync", "rides", cwd=tmp_path, project=project)
    assert synced.returncode == 0 and "batch 1" in sync_line(synced.stdout, "rides"), output(synced)
    again = run_cli("unlock", "rides", cwd=tmp_path, project=project)
    assert again.returncode == 0 and "rides: no lease; nothing to do" in again.stdout, output(again)

    # A run that is alive on this machine keeps its lease unless --force says otherwise.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import datetime, sys; from replicator import Replicator; "
         "from replicator.lake.lease import acquire_lease; "
         f"rep = Replicator.from_path({str(project)!r}); "
         "acquire_lease(rep.lake, 'rides', 'r-live', datetime.timedelta(hours=1)); print('held', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = run_cli("unlock", "rides", cwd=tmp_path, project=project)
        assert refused.returncode == 1, output(refused)
        assert f"run r-live is still running as pid {holder.pid} on this machine" in refused.stderr, output(refused)
        assert lease.exists()
        forced = run_cli("unlock", "rides", "--force", cwd=tmp_path, project=project)
        assert forced.returncode == 0 and "removed the lease of run r-live" in forced.stdout, output(forced)
        assert not lease.exists()
    finally:
        holder.kill()
        holder.wait(10)


def test_sync_and_status_on_s3_lake(tmp_path: Path, pg_url: str, s3_lake: str) -> None:
    setup_rides(pg_url, 300)
    project = pg_project(tmp_path, pg_url, {"rides": RIDES_YML}, lake=s3_lake)
    env = dict(os.environ)  # carries the AWS_* of the moto server to the child
    assert env.get("AWS_ENDPOINT_URL")
    result = run_cli("sync", cwd=tmp_path, project=project, env=env)
    assert result.returncode == 0, output(result)
    assert "300 committed, batch 1" in sync_line(result.stdout, "rides")
    again = run_cli("sync", cwd=tmp_path, project=project, env=env)
    assert "no new batch" in sync_line(again.stdout, "rides"), output(again)
    status = status_json(project, tmp_path, env=env)
    rides = status["rides"]
    assert rides["last_batch_id"] == 1 and rides["lake_rows"] == 300 and rides["lake_files"] >= 1
    assert rides["lake_bytes"] > 0 and rides["warehouse_rows"] == 300
    assert not (tmp_path / "lake").exists()
    text = run_cli("status", cwd=tmp_path, project=project, env=env)
    assert text.returncode == 0 and re.search(r"^rides\s+1\s", text.stdout, re.M), output(text)


# -- secrets --------------------------------------------------------------------------------------------------


SECRET = "Sup3rS3cretPw"
WRONG = "Wr0ngPw_9f3k2"


@pytest.fixture()
def secret_role(pg_url: str) -> Iterator[str]:
    """A login role with a password that may read public.rides of the test database."""
    role = f"rt_secret_{uuid.uuid4().hex[:8]}"
    db = sa.engine.make_url(pg_url).database
    execute(PG_ADMIN_URL, f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'")
    try:
        execute(pg_url, f'GRANT CONNECT ON DATABASE "{db}" TO {role}', f"GRANT USAGE ON SCHEMA public TO {role}")
        yield role
    finally:
        execute(pg_url, f"DROP OWNED BY {role}")
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        finally:
            admin.dispose()


def _password_enforced(role: str, db: str) -> bool:
    """Does the server check passwords on 127.0.0.1 (pg_hba md5/scram), or let anyone in (trust)?"""
    import psycopg2

    try:
        psycopg2.connect(host="127.0.0.1", port=5432, user=role, password=WRONG, dbname=db, connect_timeout=5).close()
    except psycopg2.OperationalError:
        return True
    return False


def _assert_secrets_absent(root: Path, *results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        for secret in (SECRET, WRONG):
            assert secret not in result.stdout and secret not in result.stderr, output(result)
    checked = 0
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            checked += 1
            for secret in (SECRET, WRONG):
                assert secret.encode() not in data, f"{secret!r} written to {path}"
    assert checked > 0


def test_secrets_never_reach_output_lake_or_warehouse(tmp_path: Path, pg_url: str, secret_role: str) -> None:
    setup_rides(pg_url, 80)
    db = sa.engine.make_url(pg_url).database
    execute(pg_url, f"GRANT SELECT ON rides TO {secret_role}")
    url = f"postgresql://{secret_role}:${{RT_PG_PASSWORD}}@127.0.0.1:5432/{db}"
    project_dir = tmp_path / "project"
    project = pg_project(project_dir, url, {"rides": RIDES_YML})
    assert "${RT_PG_PASSWORD}" in project.read_text()
    good = dict(os.environ, RT_PG_PASSWORD=SECRET)
    results = []

    validate = run_cli("-v", "validate", cwd=tmp_path, project=project, env=good)
    assert validate.returncode == 0, output(validate)
    sync = run_cli("-v", "sync", cwd=tmp_path, project=project, env=good)
    assert sync.returncode == 0, output(sync)
    assert "80 committed, batch 1" in sync_line(sync.stdout, "rides")
    status = run_cli("-v", "status", cwd=tmp_path, project=project, env=good)
    assert status.returncode == 0, output(status)
    results += [validate, sync, status]

    execute(pg_url, "UPDATE rides SET status = 'done', updated_at = now() - interval '30 minutes' WHERE id <= 5")
    wrong = dict(os.environ, RT_PG_PASSWORD=WRONG)
    enforced = _password_enforced(secret_role, db)
    for command in ("validate", "sync"):
        result = run_cli("-v", command, cwd=tmp_path, project=project, env=wrong)
        assert_no_traceback(result)
        if enforced:
            assert result.returncode != 0, output(result)
            assert "password authentication failed" in result.stderr or "credentials" in result.stderr
        results.append(result)

    # Errors that carry the URL: a database that does not exist, and a closed port (one source each).
    broken = write_project(tmp_path / "broken", sources={
        "nodb": f"postgresql://{secret_role}:${{RT_PG_PASSWORD}}@127.0.0.1:5432/no_such_db_{uuid.uuid4().hex[:6]}",
        "closed": f"postgresql://{secret_role}:${{RT_PG_PASSWORD}}@127.0.0.1:1/{db}",
    }, lake=str(tmp_path / "broken" / "lake"), warehouse=f"duckdb:///{tmp_path / 'broken' / 'wh.duckdb'}", tables={
        "a": RIDES_YML.replace("source: app", "source: nodb"),
        "b": RIDES_YML.replace("source: app", "source: closed"),
    })
    result = run_cli("-v", "validate", cwd=tmp_path, project=broken, env=good)
    assert result.returncode != 0, output(result)
    assert_no_traceback(result)
    assert "sources.nodb" in result.stderr and "sources.closed" in result.stderr, output(result)
    results.append(result)

    assert any((project_dir / "lake").rglob("*.parquet"))
    assert (project_dir / "warehouse.duckdb").is_file()
    _assert_secrets_absent(tmp_path, *results)


# -- onboard --------------------------------------------------------------------------------------------------


def _app_project(folder: Path, url: str) -> Path:
    return write_project(folder, sources={"app": url}, lake=str(folder / "lake"),
                         warehouse=f"duckdb:///{folder / 'warehouse.duckdb'}", tables={})


def test_onboard_postgres_table_then_validate_and_sync(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url, 50)
    project = _app_project(tmp_path, pg_url)
    result = run_cli("onboard", "app", "public.rides", cwd=tmp_path, project=project)
    assert result.returncode == 0, output(result)
    path = tmp_path / "schemas" / "rides.yml"
    assert result.stdout.strip() == f"wrote {path}"
    written = path.read_text()
    data = yaml.safe_load(written)
    assert data["source"] == "app" and data["table"] == "public.rides"
    assert data["primary_key"] == ["id"]
    assert data["watermark"] == "updated_at" and data["replication"] == "incremental"
    assert data["columns"] == ["id", "city_id", "price", "status", "created_at", "updated_at"]

    validate = run_cli("validate", cwd=tmp_path, project=project)
    assert validate.returncode == 0, output(validate)
    sync = run_cli("sync", "rides", cwd=tmp_path, project=project)
    assert sync.returncode == 0, output(sync)
    assert "50 rows extracted, 50 committed, batch 1" in sync_line(sync.stdout, "rides")

    again = run_cli("onboard", "app", "public.rides", cwd=tmp_path, project=project)
    assert again.returncode != 0, output(again)
    assert_no_traceback(again)
    assert "exists" in again.stderr and str(path) in again.stderr, output(again)
    assert path.read_text() == written


def test_onboard_unknown_source_or_table_is_a_clean_error(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url, 1)
    project = _app_project(tmp_path, pg_url)
    for args, expected in ((["onboard", "nosuch", "public.rides"], "no source named 'nosuch'"),
                           (["onboard", "app", "public.nosuch"], "public.nosuch")):
        bad = run_cli(*args, cwd=tmp_path, project=project)
        assert bad.returncode != 0, output(bad)
        assert_no_traceback(bad)
        assert expected in bad.stderr, output(bad)
    assert list((tmp_path / "schemas").iterdir()) == []


def test_onboard_integer_key_gets_id_watermark_and_syncs_incrementally(tmp_path: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL, happened_on date)",
            "INSERT INTO events SELECT g, 'k' || (g % 3), date '2024-01-01' + g FROM generate_series(1, 40) g")
    project = _app_project(tmp_path, pg_url)
    result = run_cli("onboard", "app", "public.events", cwd=tmp_path, project=project)
    assert result.returncode == 0, output(result)
    data = yaml.safe_load((tmp_path / "schemas" / "events.yml").read_text())
    assert data["primary_key"] == ["id"] and data["watermark"] == "id"
    assert data["columns"] == ["id", "kind", "happened_on"]
    assert run_cli("validate", cwd=tmp_path, project=project).returncode == 0

    first = run_cli("sync", "events", cwd=tmp_path, project=project)
    assert first.returncode == 0, output(first)
    assert "40 committed, batch 1" in sync_line(first.stdout, "events")
    execute(pg_url, "INSERT INTO events SELECT g, 'new', NULL FROM generate_series(41, 45) g")
    # The watermark is also the key: the second (incremental) run must still work.
    second = run_cli("sync", "events", cwd=tmp_path, project=project)
    assert_no_traceback(second)
    assert second.returncode == 0, output(second)
    assert "5 committed, batch 2" in sync_line(second.stdout, "events"), output(second)
    assert status_json(project, tmp_path)["events"]["warehouse_rows"] == 45


def test_onboard_mariadb_table(tmp_path: Path, mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE orders (order_id int PRIMARY KEY, total decimal(10,2), note varchar(40),"
                       " last_modified datetime(6) NOT NULL)",
            "INSERT INTO orders VALUES (1, 9.50, 'a', NOW(6) - INTERVAL 1 HOUR), (2, 12.00, NULL, NOW(6) - INTERVAL 1 HOUR),"
            " (3, 1.25, 'c', NOW(6) - INTERVAL 1 HOUR)")
    project = write_project(tmp_path, sources={"shop": mysql_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'warehouse.duckdb'}", tables={})
    result = run_cli("onboard", "shop", "orders", cwd=tmp_path, project=project)
    assert result.returncode == 0, output(result)
    data = yaml.safe_load((tmp_path / "schemas" / "orders.yml").read_text())
    assert data["source"] == "shop" and data["table"] == "orders"
    assert data["primary_key"] == ["order_id"] and data["watermark"] == "last_modified"
    assert data["columns"] == ["order_id", "total", "note", "last_modified"]
    validate = run_cli("validate", cwd=tmp_path, project=project)
    assert validate.returncode == 0, output(validate)
    sync = run_cli("sync", cwd=tmp_path, project=project)
    assert sync.returncode == 0, output(sync)
    assert "3 rows extracted, 3 committed, batch 1" in sync_line(sync.stdout, "orders")


# -- snapshot -------------------------------------------------------------------------------------------------


def test_snapshot_as_of_a_batch_and_latest(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url, 60)
    project = pg_project(tmp_path, pg_url, {"rides": RIDES_YML})
    before = dict(query(pg_url, "SELECT id, status FROM rides"))
    assert run_cli("sync", cwd=tmp_path, project=project).returncode == 0

    execute(pg_url, "UPDATE rides SET status = 'completed', updated_at = now() - interval '10 minutes' WHERE id <= 10",
            "INSERT INTO rides SELECT g, 1, 1.00, 'requested', now(), now() - interval '10 minutes'"
            " FROM generate_series(61, 75) g")
    second = run_cli("sync", cwd=tmp_path, project=project)
    assert second.returncode == 0, output(second)
    assert "25 committed, batch 2" in sync_line(second.stdout, "rides")
    after = dict(query(pg_url, "SELECT id, status FROM rides"))

    old = run_cli("snapshot", "rides", "--as-of", "1", "--out", "x.parquet", cwd=tmp_path, project=project)
    assert old.returncode == 0, output(old)
    assert old.stdout.strip() == "wrote 60 rows of rides to x.parquet"
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.num_rows == 60
    assert dict(zip(table.column("id").to_pylist(), table.column("status").to_pylist())) == before
    assert set(table.column("_batch_id").to_pylist()) == {1}

    latest = run_cli("snapshot", "rides", "--out", str(tmp_path / "latest.parquet"), cwd=tmp_path, project=project)
    assert latest.returncode == 0, output(latest)
    table = pq.read_table(tmp_path / "latest.parquet")
    assert table.num_rows == 75
    assert dict(zip(table.column("id").to_pylist(), table.column("status").to_pylist())) == after
    assert sum(s == "completed" for s in after.values()) == 10

    missing = run_cli("snapshot", "nope", "--out", "y.parquet", cwd=tmp_path, project=project)
    assert missing.returncode != 0, output(missing)
    assert_no_traceback(missing)
    assert not (tmp_path / "y.parquet").exists()


# -- locating the project -------------------------------------------------------------------------------------


def test_project_from_env_var_or_flag_else_exit_2(tmp_path: Path, pg_url: str) -> None:
    setup_rides(pg_url, 5)
    project = pg_project(tmp_path / "proj", pg_url, {"rides": RIDES_YML})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    base = env_without("REPLICATOR_PROJECT")

    by_env = run_cli("status", cwd=elsewhere, env=dict(base, REPLICATOR_PROJECT=str(project)))
    assert by_env.returncode == 0, output(by_env)
    assert re.search(r"^rides\s", by_env.stdout, re.M)
    by_flag = run_cli("status", cwd=elsewhere, env=base, project=project.parent)  # a folder means its replicator.yml
    assert by_flag.returncode == 0, output(by_flag)
    assert re.search(r"^rides\s", by_flag.stdout, re.M)
    in_folder = run_cli("status", cwd=project.parent, env=base)
    assert in_folder.returncode == 0, output(in_folder)
    # --project wins over the variable.
    wrong_env = dict(base, REPLICATOR_PROJECT=str(elsewhere / "missing.yml"))
    both = run_cli("status", cwd=elsewhere, env=wrong_env, project=project)
    assert both.returncode == 0, output(both)

    nothing = run_cli("status", cwd=elsewhere, env=base)
    assert nothing.returncode == 2, output(nothing)
    assert_no_traceback(nothing)
    assert "--project" in nothing.stderr and "REPLICATOR_PROJECT" in nothing.stderr, output(nothing)
    assert nothing.stdout == ""

    bad_env = run_cli("status", cwd=elsewhere, env=wrong_env)
    assert bad_env.returncode == 2, output(bad_env)
    assert_no_traceback(bad_env)
    assert "missing.yml" in bad_env.stderr and "$REPLICATOR_PROJECT" in bad_env.stderr, output(bad_env)
