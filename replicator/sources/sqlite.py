"""SQLite: a query_only connection; SQLite has one writer at a time, so only dates need a settle clock."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

from ..errors import ConfigError
from ..watermark import SettleClock
from .base import SqlSource


class SQLiteSource(SqlSource):
    dialect = "sqlite"

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        database = self.engine.url.database
        if database and database != ":memory:" and not database.startswith("file:") and not os.path.exists(database):
            # SQLite would silently create an empty file; a missing database is a configuration problem.
            raise ConfigError(
                f"sources.{self.name}.url: SQLite database {database} does not exist"
                " (for the embedded demo, run `replicator demo` first)"
            )
        with super().connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        with self.connect() as conn:
            conn.exec_driver_sql("PRAGMA query_only = ON")
            try:
                yield conn  # one SELECT is one consistent read in SQLite
            finally:
                conn.rollback()

    def settle_clock(self) -> SettleClock | None:
        # One writer at a time: nothing invisible commits below what a read saw. Dates still tie by
        # design, and SQLite's clock is this machine's.
        return SettleClock(now=dt.datetime.now(dt.timezone.utc), margin=self.config.settle_margin,
                           concurrent_writers=False)
