"""PostgreSQL: REPEATABLE READ, READ ONLY snapshots with timeouts; the horizon from pg_stat_activity."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2.extensions
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..types import Unrepresentable
from ..watermark import SettleClock
from .base import CONNECT_TIMEOUT_S, ReadRequest, SqlSource
from .postgres_arrow import AdbcConnections, adbc_installed, arrow_path_available, read_chunk_arrow
from .session import postgres_session, set_config_call
from .typemap import NON_FINITE_REMEDY

log = logging.getLogger(__name__)

# A session connected to another database cannot write this one's tables, so only this database's count.
_HORIZON = sa.text(
    """
    SELECT clock_timestamp() AS now,
           (SELECT min(xact_start) FROM pg_stat_activity
             WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
               AND datname = current_database()) AS oldest,
           (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
             OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_see
    """
)


def _guarded(base: Any) -> Any:
    """psycopg2's caster, except that it never turns 'infinity' into 9999-12-31 (its default) nor fails."""
    def cast(value: str | None, cursor: Any) -> Any:
        if value is None:
            return None
        if value in ("infinity", "-infinity"):
            return Unrepresentable(_beyond(value))
        try:
            return base(value, cursor)
        except ValueError:  # years beyond 9999 or BC
            return Unrepresentable(_beyond(value))
    return psycopg2.extensions.new_type(base.values, f"REPLICATOR_{base.name}", cast)


def _beyond(value: str) -> str:
    return f"PostgreSQL value {value!r} is beyond what the row path can read exactly; {NON_FINITE_REMEDY}"


_CASTERS = [_guarded(c) for c in (psycopg2.extensions.DATE, psycopg2.extensions.PYDATETIME,
                                  psycopg2.extensions.PYDATETIMETZ)]


class PostgresSource(SqlSource):
    dialect = "postgresql"
    _warned_privilege = False
    use_arrow = True  # the ADBC fast path where it is exact; tests compare it with the row path
    _adbc: AdbcConnections | None = None

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        with self.connect() as raw:
            settings = postgres_session(self.config)
            conn = raw.execution_options(isolation_level=settings.isolation, postgresql_readonly=settings.read_only)
            for caster in _CASTERS:
                psycopg2.extensions.register_type(caster, raw.connection.dbapi_connection)
            with conn.begin():
                # The timeouts last as long as the snapshot's transaction, not the pooled connection.
                conn.exec_driver_sql(*set_config_call(settings.variables, numbered=False))
                yield conn

    def read_chunk(self, request: ReadRequest, after: tuple[Any, ...] | None, limit: int | None) -> Iterator[pa.RecordBatch]:
        if self.use_arrow and arrow_path_available(request.schema, after):
            return read_chunk_arrow(self, self._adbc_connections(), request, after, limit)
        return super().read_chunk(request, after, limit)

    def will_read(self) -> None:
        if self.use_arrow and adbc_installed():
            # Before the table is described: a table the row path reads (arrays of numeric) leaves the
            # connection idle until the source closes, which most tables repay.
            self._adbc_connections().warm()

    def _adbc_connections(self) -> AdbcConnections:
        url = self.engine.url  # before the lock: the engine takes it too
        with self._engine_lock:
            if self._adbc is None:
                libpq = url.set(drivername="postgresql")
                if "connect_timeout" not in libpq.query:  # as the engine's
                    libpq = libpq.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
                self._adbc = AdbcConnections(self.name, libpq.render_as_string(hide_password=False))
            return self._adbc

    def close(self) -> None:
        if self._adbc is not None:
            self._adbc.close()
        super().close()

    def clock_sql(self) -> str:
        return "SELECT clock_timestamp()"

    def settle_clock(self) -> SettleClock | None:
        with self.connect() as conn:
            row = conn.execute(_HORIZON).one()
        if not row.can_see and not PostgresSource._warned_privilege:
            PostgresSource._warned_privilege = True
            log.warning(
                "source %r: the role cannot see other sessions' transactions (grant pg_read_all_stats); "
                "late commits are covered only by each table's lookback",
                self.name,
            )
        return SettleClock(now=row.now, oldest_open=row.oldest, margin=self.config.settle_margin)
