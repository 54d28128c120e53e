"""What a sync does with a role that has fewer privileges than it would like, or none it needs."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from replicator import Replicator, WarehouseError

from ..conftest import MYSQL_ADMIN_URL, PG_ADMIN_URL, execute, write_project


@pytest.fixture()
def plain_role(pg_url: str):  # type: ignore[no-untyped-def]
    """A login role that can read the test table but not see other sessions (no pg_read_all_stats)."""
    role = f"rt_role_{uuid.uuid4().hex[:8]}"
    db = sa.engine.make_url(pg_url).database
    execute(PG_ADMIN_URL, f'CREATE ROLE "{role}" LOGIN')
    execute(pg_url, f'GRANT USAGE ON SCHEMA public TO "{role}"', f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "{role}"',
            f'REVOKE CREATE ON DATABASE "{db}" FROM PUBLIC', 'REVOKE CREATE ON SCHEMA public FROM PUBLIC')
    try:
        yield role, sa.engine.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    finally:
        execute(pg_url, f'DROP OWNED BY "{role}"')
        execute(PG_ADMIN_URL, f'DROP ROLE IF EXISTS "{role}"')


def test_horizon_without_privilege_warns_once_and_falls_back(tmp_path: Path, pg_url: str, plain_role, duckdb_url: str,
                                                              caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from replicator.sources.postgres import PostgresSource

    role, url = plain_role
    execute(pg_url, "CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO t (id) VALUES (1)")
    monkeypatch.setattr(PostgresSource, "_warned_privilege", False)  # each test sees the one warning
    project = write_project(tmp_path, sources={"app": url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            tables={"t": "source: app\ntable: public.t\nprimary_key: [id]\nwatermark: updated_at\nlookback: 1m\n"})
    rep = Replicator.from_path(project)
    with caplog.at_level(logging.WARNING, logger="replicator.sources.postgres"):
        rep.sync("t")
        execute(pg_url, "INSERT INTO t (id) VALUES (2)")
        rep.sync("t")
    warnings = [r.getMessage() for r in caplog.records if "pg_read_all_stats" in r.getMessage()]
    assert len(warnings) == 1 and "lookback" in warnings[0]
    assert rep.read_table("t").num_rows == 2


def test_warehouse_schema_that_cannot_be_created_is_a_clear_error(tmp_path: Path, pg_url: str, plain_role) -> None:
    role, url = plain_role
    execute(pg_url, "CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO t (id) VALUES (1)")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=url,
                            tables={"t": "source: app\ntable: public.t\nprimary_key: [id]\nwatermark: updated_at\n"})
    rep = Replicator.from_path(project)
    with pytest.raises(WarehouseError, match="permission denied for database"):
        rep.sync("t")
    assert rep.warehouse.last_loaded_seq("t") == 0
    assert rep.read_table("t").num_rows == 1  # the lake batch is committed; the warehouse loads it once it can


@pytest.fixture()
def mysql_plain_user(mysql_url: str):  # type: ignore[no-untyped-def]
    """A MariaDB user with SELECT on the test database only: no PROCESS, so information_schema.INNODB_TRX is closed."""
    user = f"rt_u_{uuid.uuid4().hex[:8]}"
    db = sa.engine.make_url(mysql_url).database
    execute(MYSQL_ADMIN_URL, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'",
            f"GRANT SELECT ON `{db}`.* TO '{user}'@'%'")
    try:
        yield sa.engine.make_url(mysql_url).set(username=user, password=f"pw-{user}").render_as_string(hide_password=False)
    finally:
        execute(MYSQL_ADMIN_URL, f"DROP USER IF EXISTS '{user}'@'%'")


def test_mysql_horizon_without_process_privilege_warns_once_and_falls_back(
        tmp_path: Path, mysql_url: str, mysql_plain_user: str, duckdb_url: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from replicator.sources.mysql import MySQLSource

    execute(mysql_url, "CREATE TABLE t (id int PRIMARY KEY, updated_at datetime(6) NOT NULL DEFAULT UTC_TIMESTAMP(6))",
            "INSERT INTO t (id) VALUES (1)")
    with pytest.raises(pymysql.err.OperationalError, match="PROCESS"):
        execute(mysql_plain_user, "SELECT COUNT(*) FROM information_schema.INNODB_TRX")
    monkeypatch.setattr(MySQLSource, "_warned_privilege", False)  # each test sees the one warning
    project = write_project(tmp_path, sources={"app": mysql_plain_user}, lake=str(tmp_path / "lake"),
                            warehouse=duckdb_url,
                            tables={"t": "source: app\ntable: t\nprimary_key: [id]\nwatermark: updated_at\nlookback: 1m\n"})
    rep = Replicator.from_path(project)
    with caplog.at_level(logging.WARNING, logger="replicator.sources.mysql"):
        first = rep.sync("t")
        execute(mysql_url, "INSERT INTO t (id) VALUES (2)")
        second = rep.sync("t")
    warnings = [r.getMessage() for r in caplog.records if "PROCESS" in r.getMessage()]
    assert len(warnings) == 1 and "lookback" in warnings[0]
    assert (first.extract.rows_committed, second.extract.rows_committed) == (1, 1)
    assert rep.read_table("t").num_rows == 2
    assert all("pw-" not in r.getMessage() for r in caplog.records)
