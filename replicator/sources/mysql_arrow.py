"""MySQL/MariaDB's fast path: connectorx streams each SELECT as Arrow over the binary protocol.

Used when every column converts exactly: integers, floats, strings (json, enum, set), binary, date,
time, datetime and timestamp, and decimals (read as text in SQL and cast to their exact decimal
type in Arrow, never rounded; TIME is read as text as well, so a duration beyond 24h stops the read
with a message naming its column). Tables with other types (BIT, unknown) take pymysql's row path.
Values reach the query as session variables set with the driver's own escaping (what pymysql does
when it binds), so nothing from a YAML file or the data is ever pasted into SQL.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ..errors import ReplicatorError
from ..native_memory import release_free_memory, share_one_arena
from ..types import ColumnSpec, decimal_logical
from .arrow import conform, reader_error
from .base import ReadRequest, TableSchema
from .query import inline_text, read_select
from .session import mysql_isolation_sql, mysql_session, mysql_set_sql

if TYPE_CHECKING:
    from .mysql import MySQLSource

# Imported on first use (a large native module); the row path works without it.
_HAVE_CONNECTORX = importlib.util.find_spec("connectorx") is not None

__all__ = ["arrow_path_available", "read_chunk_arrow"]


def _exact(spec: ColumnSpec) -> bool:
    t = spec.arrow_type
    if isinstance(spec.sql_type, mysql.BIT) or spec.logical == "text":
        return False
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_binary(t)
            or pa.types.is_date32(t) or pa.types.is_time64(t) or pa.types.is_timestamp(t) or pa.types.is_decimal(t))


def _cast_type(t: pa.DataType) -> sa.types.TypeEngine[Any] | None:
    if pa.types.is_timestamp(t):
        return mysql.DATETIME(fsp=6)
    if pa.types.is_date32(t):
        return sa.Date()
    if pa.types.is_integer(t):
        return mysql.INTEGER(unsigned=pa.types.is_unsigned_integer(t))
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    return None


def _as_text(spec: ColumnSpec) -> bool:
    return (pa.types.is_decimal(spec.arrow_type) or pa.types.is_time64(spec.arrow_type)
            or decimal_logical(spec.logical) is not None)


def arrow_path_available(schema: TableSchema) -> bool:
    return _HAVE_CONNECTORX and all(_exact(c) for c in schema.columns)


def read_chunk_arrow(source: MySQLSource, request: ReadRequest, after: tuple[Any, ...] | None,
                     limit: int | None) -> Iterator[pa.RecordBatch]:
    """One statement (its own consistent read), read-only, in UTC, with the statement timeout."""
    import connectorx
    from pymysql.converters import escape_item

    share_one_arena()

    variables: dict[str, str] = {}

    def param(name: str, spec: ColumnSpec, value: Any) -> sa.ColumnElement[Any]:
        variables[f"@replicator_{name}"] = escape_item(source.bind_value(spec, value), "utf8mb4")
        variable: sa.ColumnElement[Any] = sa.literal_column(f"@replicator_{name}")
        # A user variable holds text; cast it to the column's kind so the comparison is exact and indexed.
        target = _cast_type(spec.arrow_type)
        return sa.cast(variable, target) if target is not None else variable

    # Decimals travel as their exact text; conform() casts them and refuses any rounding. TIME travels as
    # text too: connectorx panics on a duration beyond 24h without naming the column, conform() names it.
    stmt = read_select(request, after, limit, param=param, as_text=_as_text)
    query = inline_text(stmt, source.engine.dialect)
    settings = mysql_session(source.config, mariadb=source.is_mariadb())
    # Each statement is its own consistent read here, so the session's isolation and read-only mode
    # are set for the session rather than for one transaction.
    setup = [
        mysql_set_sql(settings, lambda value: escape_item(value, "utf8mb4")),
        mysql_isolation_sql(settings, with_read_only=True),
        *[f"SET {name} = {literal}" for name, literal in variables.items()],
    ]
    uri = source.engine.url.set(drivername="mysql", query={}).render_as_string(hide_password=False)
    step = source.config.batch_rows
    schema = request.schema.arrow
    try:
        reader = connectorx.read_sql(uri, query, return_type="arrow_stream", batch_size=step,
                                     pre_execution_query=setup)
        for batch in reader:
            yield conform(batch, schema, request.table.table)
        # Between statements most of the chunk's batches are written and freed: hand their pages back
        # before the next chunk refills the heap, instead of letting it grow around what is still held.
        release_free_memory()
    except ReplicatorError:
        raise
    except BaseException as exc:  # connectorx reports driver failures as RuntimeError or a Rust panic
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise reader_error(source.name, exc) from exc


