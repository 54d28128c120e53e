"""MySQL and MariaDB: consistent read-only snapshots in UTC; the horizon from innodb_trx."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..types import ColumnSpec
from ..watermark import SettleClock
from .base import ReadRequest, SqlSource
from .mysql_arrow import arrow_path_available, read_chunk_arrow
from .session import SessionSettings, mysql_isolation_sql, mysql_session, mysql_set_sql

log = logging.getLogger(__name__)

_ARROW_CHUNK_BATCHES = 8  # connectorx keyset chunks of at most 8 batches (400,000 rows by default)


class MySQLSource(SqlSource):
    dialect = "mysql"
    _warned_privilege = False
    use_arrow = True  # connectorx where it is exact; tests compare it with the row path
    _mariadb: bool | None = None

    def set_session(self, conn: Connection) -> SessionSettings:
        """Set the read session's variables on `conn` (autocommit); the snapshot adds the transaction."""
        settings = mysql_session(self.config, mariadb=bool(conn.dialect.is_mariadb))  # type: ignore[attr-defined]
        conn.exec_driver_sql(mysql_set_sql(settings), settings.values)
        return settings

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        with self.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            settings = self.set_session(conn)
            conn.exec_driver_sql(mysql_isolation_sql(settings, with_read_only=False))
            # The snapshot's own transaction is the read-only one, not the pooled connection's later uses.
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT" + (", READ ONLY" if settings.read_only else ""))
            try:
                yield conn
            except BaseException:
                # The connection may be dead already; ending the snapshot must not hide why.
                with contextlib.suppress(Exception):
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    def is_mariadb(self) -> bool:
        if self._mariadb is None:
            with self.connect() as conn:
                self._mariadb = bool(conn.dialect.is_mariadb)  # type: ignore[attr-defined]
        return self._mariadb

    def _reads_with_connectorx(self, request: ReadRequest) -> bool:
        return self.use_arrow and arrow_path_available(request.schema)

    def chunk_rows(self, request: ReadRequest) -> int:
        # connectorx decodes ahead of its consumer without a bound, so while Parquet encoding or an
        # upload is slower than the read, a chunk piles up in memory: smaller chunks cap that.
        if self._reads_with_connectorx(request):
            return min(self.config.chunk_rows, _ARROW_CHUNK_BATCHES * self.config.batch_rows)
        return self.config.chunk_rows

    def reads_ahead(self, request: ReadRequest) -> bool:
        # connectorx decodes in its own threads; a second read-ahead only held more batches (20 MiB).
        return self._reads_with_connectorx(request)

    def read_chunk(self, request: ReadRequest, after: tuple[Any, ...] | None, limit: int | None) -> Iterator[pa.RecordBatch]:
        if self._reads_with_connectorx(request):
            return read_chunk_arrow(self, request, after, limit)
        return super().read_chunk(request, after, limit)

    def bind_value(self, spec: ColumnSpec, value: Any) -> Any:
        # The session is in UTC; MySQL would misread an ISO offset, so bind zone-aware values as naive UTC.
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def clock_sql(self) -> str:
        return "SELECT UTC_TIMESTAMP(6)"

    def settle_clock(self) -> SettleClock | None:
        with self.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            self.set_session(conn)
            now = conn.exec_driver_sql(self.clock_sql()).scalar_one()
            try:
                # trx_started has whole seconds, truncated: an open transaction looks older, never younger.
                oldest = conn.exec_driver_sql(
                    "SELECT MIN(trx_started) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()"
                ).scalar_one()
            except sa.exc.DBAPIError:
                oldest = None
                if not MySQLSource._warned_privilege:
                    MySQLSource._warned_privilege = True
                    log.warning(
                        "source %r: the user cannot read information_schema.INNODB_TRX (grant PROCESS); "
                        "late commits are covered only by each table's lookback", self.name,
                    )
        utc = dt.timezone.utc
        return SettleClock(now=now.replace(tzinfo=utc), oldest_open=oldest.replace(tzinfo=utc) if oldest else None,
                           margin=self.config.settle_margin)


__all__ = ["MySQLSource"]
