"""Fixtures of the fault tests, and the end-of-session line counting converged fault cases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ..conftest import PG_ADMIN_URL
from .common import STATS


@pytest.fixture()
def pg_warehouse() -> Iterator[str]:
    """A second, empty PostgreSQL database used as the warehouse (postgresql://...)."""
    name = f"rw_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name, drivername="postgresql")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture()
def fresh_s3_client() -> Iterator[None]:
    """replicator.lake.s3 caches one boto3 client per process: drop it before and after a test that
    points AWS_ENDPOINT_URL somewhere else (the fault proxy)."""
    import replicator.lake.s3 as s3

    s3._client = None
    yield
    s3._client = None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STATS["ran"]:
        terminalreporter.write_line(
            f"fault cases: {STATS['ran']} ran, {STATS['lost']} lost rows, {STATS['duplicates']} duplicates"
        )
