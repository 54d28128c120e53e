"""Shared fixtures: real PostgreSQL and MariaDB databases per test, an S3 server over HTTP, project files."""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

# Hypothesis's pytest plugin imports hypothesis at the end of a session when no property test ran; with
# pytest's assertion rewriting that compile raced a server thread still importing (CPython 3.11:
# "AST constructor recursion depth mismatch"). Importing it during collection avoids the race.
import hypothesis  # noqa: F401
import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("REPLICATOR_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("REPLICATOR_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")


# MariaDB's settle horizon reads the open transactions of the whole server (INNODB_TRX has no database),
# so a test's MariaDB work may not overlap another test's: under pytest-xdist the workers take turns on
# the server through this lock, while PostgreSQL (horizon per database), SQLite and DuckDB tests run side
# by side. Reentrant within a process: a module-scoped database may hold it while a test takes it again.
_MARIADB_LOCK = Path(tempfile.gettempdir()) / "replicator-tests-mariadb.lock"
_mariadb_depth = [0]  # how many mariadb_turn() blocks of this process are open


@contextmanager
def mariadb_turn() -> Iterator[None]:
    """Hold the MariaDB server for this test process (see _MARIADB_LOCK)."""
    with ExitStack() as held:
        if not _mariadb_depth[0]:
            fd = os.open(_MARIADB_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
            held.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.callback(fcntl.flock, fd, fcntl.LOCK_UN)
        _mariadb_depth[0] += 1
        try:
            yield
        finally:
            _mariadb_depth[0] -= 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its fault-case counts to the controller, which prints the one total."""
    from .faults.common import STATS  # here, not at the top: tests/faults/common.py imports this module

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fault_stats"] = dict(STATS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from .faults.common import STATS

    for key, value in getattr(node, "workeroutput", {}).get("fault_stats", {}).items():
        STATS[key] += value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from .faults.common import STATS

    if STATS["ran"]:
        terminalreporter.write_line(
            f"fault cases: {STATS['ran']} ran, {STATS['lost']} lost rows, {STATS['duplicates']} duplicates"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in this process, spoken to over real HTTP like MinIO or AWS."""
    from moto import backends as moto_backends
    from moto.server import ThreadedMotoServer

    # moto routes every request by listing its own package folder (list_of_moto_modules, os.listdir and
    # an isdir per entry): about 40% of its time per request here. The folder does not change during
    # the tests, so it is listed once.
    listed = moto_backends.list_of_moto_modules
    modules = tuple(listed())
    moto_backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing-secret",
                      AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        moto_backends.list_of_moto_modules = listed  # type: ignore[assignment]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture()
def s3_lake(s3_endpoint: str) -> str:
    """A fresh bucket; returns the lake URL s3://<bucket>/lake."""
    import boto3

    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@contextmanager
def _database(admin_url: str, create: str, drop: str, url: sa.engine.URL) -> Iterator[str]:
    """Run `create` on the admin connection, yield `url`, then run `drop`."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(create)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop)
        admin.dispose()


@contextmanager
def pg_database(prefix: str = "rt", drivername: str | None = None) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    if drivername:
        url = url.set(drivername=drivername)
    with _database(PG_ADMIN_URL, f'CREATE DATABASE "{name}"', f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                   url) as out:
        yield out


@contextmanager
def mysql_database(prefix: str) -> Iterator[str]:
    """A new, empty MariaDB database (its URL), dropped afterwards; held under mariadb_turn()."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = sa.engine.make_url(MYSQL_ADMIN_URL).set(database=name, query={"charset": "utf8mb4"})
    with mariadb_turn(), _database(MYSQL_ADMIN_URL, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
                                   f"DROP DATABASE IF EXISTS `{name}`", url) as out:
        yield out


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped after the test."""
    with pg_database() as url:
        yield url


@pytest.fixture()
def mysql_url() -> Iterator[str]:
    """A new, empty MariaDB database, dropped after the test; the test has the server to itself."""
    with mysql_database("rt") as url:
        yield url


def execute(url: str, *statements: str, params: list[dict] | None = None) -> None:
    """Run SQL on a test database in one transaction (test set-up only)."""
    engine = sa.create_engine(url)
    try:
        if params is not None:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(sa.text(statement), params)
            return
        raw = engine.raw_connection()  # the driver's own execute: no parameter markers to escape
        try:
            cur = raw.cursor()
            for statement in statements:
                cur.execute(statement)
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def query(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]
        finally:
            raw.close()
    finally:
        engine.dispose()


def write_project(
    folder: Path,
    *,
    sources: dict[str, str],
    lake: str,
    warehouse: str,
    tables: dict[str, str],
    extra: str = "",
    source_options: str = "",
) -> Path:
    """Write replicator.yml and schemas/<name>.yml; returns the project file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schemas").mkdir(exist_ok=True)
    lines = ["sources:"]
    for name, url in sources.items():
        lines += [f"  {name}:", f"    url: '{url}'"]
        if source_options:
            lines += [f"    {line}" for line in source_options.strip().splitlines()]
    lines += ["lake:", f"  url: '{lake}'", "warehouse:", f"  url: '{warehouse}'", "  schema: raw"]
    text = "\n".join(lines) + "\n" + textwrap.dedent(extra)
    path = folder / "replicator.yml"
    path.write_text(text)
    for name, body in tables.items():
        (folder / "schemas" / f"{name}.yml").write_text(textwrap.dedent(body))
    return path


@pytest.fixture()
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
