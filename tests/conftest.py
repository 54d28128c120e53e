"""Shared fixtures: real PostgreSQL and MariaDB databases per test, an S3 server over HTTP, project files."""

from __future__ import annotations

import os
import socket
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Hypothesis's pytest plugin imports hypothesis at the end of a session when no property test ran; with
# pytest's assertion rewriting that compile raced a server thread still importing (CPython 3.11:
# "AST constructor recursion depth mismatch"). Importing it during collection avoids the race.
import hypothesis  # noqa: F401
import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("REPLICATOR_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("REPLICATOR_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in this process, spoken to over real HTTP like MinIO or AWS."""
    from moto.server import ThreadedMotoServer

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
def pg_database(prefix: str = "rt", drivername: str | None = None) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    if drivername:
        url = url.set(drivername=drivername)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped after the test."""
    with pg_database() as url:
        yield url


@pytest.fixture()
def mysql_url() -> Iterator[str]:
    """A new, empty MariaDB database, dropped after the test."""
    name = f"rt_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.engine.make_url(MYSQL_ADMIN_URL).set(database=name, query={"charset": "utf8mb4"}).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


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
