"""PostgreSQL's fast path: ADBC streams each SELECT as Arrow (COPY, binary) and we conform it exactly.

Used when every column has an exact conversion from what ADBC delivers (numbers, numeric, text, bytea,
dates, times, timestamps, booleans, and arrays of those but numeric); any other table takes the
row path of SqlSource. Values reach the query through set_config() in the same transaction, so the
query itself has no parameters (which lets ADBC use COPY) and no value is ever pasted into SQL.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from ..errors import SourceError
from ..types import ColumnSpec
from .arrow import conform, reader_error
from .base import ReadRequest, SqlSource, TableSchema
from .query import inline_text, read_select
from .session import postgres_begin_sql, postgres_session, set_config_call

# Imported on first use (it loads libpq and the ADBC driver manager); the row path works without it.
_HAVE_ADBC = importlib.util.find_spec("adbc_driver_postgresql") is not None

__all__ = ["AdbcConnections", "adbc_installed", "arrow_path_available", "read_chunk_arrow"]

_SETTING_PREFIX = "replicator."
_BATCH_BYTES = 4 * 2**20
# PostgreSQL's earliest date and timestamp (4714-11-24 BC), in days and microseconds since 1970. ADBC
# adds the 2000 -> 1970 epoch shift without an overflow check, so 'infinity', '-infinity' and timestamps
# beyond Arrow's int64 microseconds (after year 294,000) wrap to far below these: such a value was lost.
_PG_FIRST_DAY = -2440588
_PG_FIRST_US = _PG_FIRST_DAY * 86_400_000_000


def _exact_from_adbc(t: pa.DataType) -> bool:
    if pa.types.is_list(t):
        return _exact_from_adbc(t.value_type) and not pa.types.is_decimal(t.value_type)
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
            or pa.types.is_binary(t) or pa.types.is_date32(t) or pa.types.is_time64(t)
            or pa.types.is_timestamp(t) or pa.types.is_decimal(t))


def adbc_installed() -> bool:
    return _HAVE_ADBC


def arrow_path_available(schema: TableSchema, key_values: tuple[Any, ...] | None = None) -> bool:
    """True when ADBC is installed and every column converts exactly."""
    if not _HAVE_ADBC:
        return False
    if key_values and any(isinstance(v, (bytes, bytearray)) for v in key_values):
        return False
    return all(_exact_from_adbc(c.arrow_type) for c in schema.columns)


def _setting_text(value: Any) -> str:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (int, Decimal, str)):
        return str(value)
    raise TypeError(f"cannot pass a {type(value).__name__} to the query")


class AdbcConnections:
    """One source's idle ADBC connections, reused by its reads.

    Opening one costs about 70 ms (the driver loads pg_type to resolve column types), which was most of
    a small table's incremental sync: 200 unchanged tables spent 14 s of 24 s connecting. A connection
    goes back only after its read's COMMIT (every setting of a read is local to its transaction), so
    one abandoned mid-read or failed is closed, never reused. Tables read side by side each take their own.
    """

    def __init__(self, source: str, uri: str) -> None:
        self._source = source
        self._uri = uri
        self._idle: list[Any] = []
        self._opening: Future[Any] | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start opening a connection for a read that is about to come, unless one is idle or opening.

        The driver's connect (about 50 ms: the server's handshake and pg_type) holds no GIL, so it runs
        beside the extract's own work before the read (describing the table, the lease, recovery, the
        settle clock): it was a quarter of a small incremental sync's extract.
        """
        with self._lock:
            if self._idle or self._opening is not None:
                return
            opening: Future[Any] = Future()
            self._opening = opening
        threading.Thread(target=self._open_into, args=(opening,), name="adbc-connect", daemon=True).start()

    def _open_into(self, opening: Future[Any]) -> None:
        try:
            opening.set_result(self.fresh())
        except BaseException as exc:  # handed to take(), which raises it as its own
            opening.set_exception(exc)

    def take(self) -> tuple[Any, bool]:
        """A connection, and whether it was used before (a server restart since may have ended it)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            opening, self._opening = self._opening, None
        if opening is not None:
            return opening.result(), False
        return self.fresh(), False

    def fresh(self) -> Any:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as adbc_pg

        try:
            return adbc_pg.connect(self._uri, autocommit=True)
        except adbc_driver_manager.Error as exc:
            raise reader_error(self._source, exc) from exc

    def give_back(self, conn: Any) -> None:
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            opening, self._opening = self._opening, None
        if opening is not None and opening.exception() is None:  # waits for a connect under way
            idle.append(opening.result())
        for conn in idle:
            conn.close()


def _begin(conn: Any, settings_sql: str, config_call: tuple[str, tuple[Any, ...]]) -> Any:
    cur = conn.cursor()
    cur.execute(settings_sql)
    cur.execute(config_call[0], parameters=config_call[1])
    cur.fetchall()
    return cur


def read_chunk_arrow(source: SqlSource, connections: AdbcConnections, request: ReadRequest,
                     after: tuple[Any, ...] | None, limit: int | None) -> Iterator[pa.RecordBatch]:
    """One statement in one read-only snapshot, streamed by ADBC, re-sliced to `batch_rows`."""
    variables: dict[str, str] = {}

    def param(name: str, spec: ColumnSpec, value: Any) -> sa.ColumnElement[Any]:
        variables[_SETTING_PREFIX + name] = _setting_text(value)
        assert spec.sql_type is not None  # reflected columns always carry their SQL type
        return sa.cast(sa.func.current_setting(_SETTING_PREFIX + name), spec.sql_type)

    stmt = read_select(request, after, limit, param=param)
    query = inline_text(stmt, source.engine.dialect)
    config = source.config
    settings = postgres_session(config)
    schema = request.schema.arrow
    step = config.batch_rows
    import adbc_driver_manager

    begin = postgres_begin_sql(settings)
    config_call = set_config_call([*settings.variables, *variables.items()], numbered=True)
    conn, reused = connections.take()
    try:
        try:
            cur = _begin(conn, begin, config_call)
        except adbc_driver_manager.Error:
            if not reused:
                raise
            conn.close()  # ended while idle (a server restart, an idle timeout): once more on a new one
            conn = connections.fresh()
            cur = _begin(conn, begin, config_call)
        # Smaller result batches than ADBC's 16 MiB default keep the read-ahead's memory small.
        cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(_BATCH_BYTES)})
        cur.execute(query)
        reader = cur.fetch_record_batch()
        for batch in reader:
            batch = conform(batch, schema, request.table.table)
            _check_in_range(batch, request.table.table)
            for offset in range(0, batch.num_rows, step):
                yield batch.slice(offset, step)
        cur.execute("COMMIT")
        cur.close()
        connections.give_back(conn)
        conn = None
    except adbc_driver_manager.Error as exc:
        raise reader_error(source.name, exc) from exc
    finally:
        if conn is not None:
            conn.close()


def _check_in_range(batch: pa.RecordBatch, table: str) -> None:
    """Stop on a date or timestamp ADBC could not carry (it wrapped around instead of failing)."""
    for array, field in zip(batch.columns, batch.schema):
        values = array.flatten() if pa.types.is_list(array.type) else array
        if pa.types.is_date32(values.type):
            first = _PG_FIRST_DAY
        elif pa.types.is_timestamp(values.type):
            first = _PG_FIRST_US
        else:
            continue
        low = pc.min(values.cast(pa.int32() if pa.types.is_date32(values.type) else pa.int64())).as_py()
        if low is not None and low < first:
            raise SourceError(
                f"table {table!r}: column {field.name!r} holds 'infinity', '-infinity' or a date beyond what "
                "Arrow's date32/timestamp(us) can hold; change such values in the source (to NULL or a real "
                "date, say), or leave the column out with `columns:` in the table's YAML; nothing was written"
            )
