"""SQLite: a query_only connection; SQLite has one writer at a time, so no settle horizon."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

from .base import SqlSource


class SQLiteSource(SqlSource):
    dialect = "sqlite"

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        with self.connect() as conn:
            conn.exec_driver_sql("PRAGMA query_only = ON")
            try:
                yield conn  # one SELECT is one consistent read in SQLite
            finally:
                conn.rollback()
