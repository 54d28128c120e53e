"""Fixtures of the fault tests (the end-of-session line counting their cases is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import pg_database


@pytest.fixture()
def pg_warehouse() -> Iterator[str]:
    """A second, empty PostgreSQL database used as the warehouse (postgresql://...)."""
    with pg_database("rw", drivername="postgresql") as url:
        yield url

