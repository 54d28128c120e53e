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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STATS["ran"]:
        terminalreporter.write_line(
            f"fault cases: {STATS['ran']} ran, {STATS['lost']} lost rows, {STATS['duplicates']} duplicates"
        )
