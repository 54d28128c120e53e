"""MySQL and MariaDB: consistent read-only snapshots in UTC; the horizon from innodb_trx."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
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
_TRX_READINGS = 20  # tries for a fresh INNODB_TRX reading (see _oldest_open_transaction)
_TRX_REFRESH_S = 0.12  # InnoDB refreshes the buffer behind INNODB_TRX once unread for 0.1 s
_TRX_UNKNOWN_AGE = dt.timedelta(days=3650)


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
                oldest = _oldest_open_transaction(conn, now)
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


def _oldest_open_transaction(conn: Connection, now: dt.datetime) -> dt.datetime | None:
    """The start of the oldest transaction open at `now` in another session (None: there is none).

    InnoDB serves INNODB_TRX from a buffer it refreshes only when nobody has read it for 0.1 s, so a
    reading right after another one (this process's previous table, any other client) can predate a
    transaction opened in between, and a row that transaction commits later would be skipped. The
    reading is trusted only once it lists this session's own transaction, begun after `now`, running
    this very statement (a token no earlier reading can hold: a pooled session's earlier transaction may
    be in a stale reading under the same id); until then
    it is taken again a little over 0.1 s later. trx_started has whole seconds, truncated: an open
    transaction looks older, never younger.
    """
    conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    try:
        me = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        for _ in range(_TRX_READINGS):
            token = uuid.uuid4().hex  # hex digits only: safe inside the comment
            rows = conn.exec_driver_sql(
                f"SELECT /* replicator {token} */ trx_mysql_thread_id, trx_started, trx_query "  # noqa: S608 - a uuid
                "FROM information_schema.INNODB_TRX").all()
            if any(thread == me and token in (query or "") for thread, _, query in rows):
                return min((started for thread, started, _ in rows if thread != me), default=None)
            time.sleep(_TRX_REFRESH_S)
    finally:
        conn.exec_driver_sql("ROLLBACK")
    # Never a fresh reading (other clients read it without a pause): assume a transaction as old as
    # any, so nothing counts as settled in this sync; the next one tries again.
    log.warning("the source's list of open transactions stayed stale for %.1f s; this sync settles no watermark "
                "value it has not settled before", _TRX_READINGS * _TRX_REFRESH_S)
    return now - _TRX_UNKNOWN_AGE


__all__ = ["MySQLSource"]
