"""Fixtures of the fault tests, and the end-of-session line counting converged fault cases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import pg_database
from .common import STATS


@pytest.fixture()
def pg_warehouse() -> Iterator[str]:
    """A second, empty PostgreSQL database used as the warehouse (postgresql://...)."""
    with pg_database("rw", drivername="postgresql") as url:
        yield url


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
