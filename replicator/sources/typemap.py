"""Reflected SQL column types -> Arrow types, per dialect, and the value converters that keep them exact.

The row path selects every column with its driver's raw values (no SQLAlchemy result processing), then
each `ColumnSpec` turns a column of raw values into an Arrow array of exactly `arrow_type`. This module
lives with the sources because it needs SQLAlchemy: commands that never open a source (load, status)
do not import it.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Context, Decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ..types import UNBOUNDED_NUMERIC, ColumnSpec, Converter, decimal_text_logical

__all__ = ["NON_FINITE_REMEDY", "TIME_REMEDY", "UNSIGNED_REMEDY", "column_spec", "iceberg_compatible"]

UNSIGNED_REMEDY = ("Iceberg has no unsigned integers, so with lake.iceberg set this column is a signed one; change "
                   "the value in the source, or leave the column out with `columns:` in the table's YAML; nothing "
                   "was written")
NON_FINITE_REMEDY = ("replace it in the source (with NULL, say), or leave the column out with `columns:` "
                     "in the table's YAML; nothing was written")
TIME_REMEDY = ("store such durations as an integer or interval column in the source, or leave the column out "
               "with `columns:` in the table's YAML; nothing was written")

log = logging.getLogger(__name__)


def _map_values(fn: Callable[[Any], Any]) -> Converter:
    return lambda values: [None if v is None else fn(v) for v in values]


def _to_bytes(v: Any) -> bytes:
    return bytes(v)


def _timedelta_to_time(v: Any) -> dt.time:
    if isinstance(v, dt.time):
        return v
    if not dt.timedelta(0) <= v < dt.timedelta(days=1):
        raise ValueError(f"TIME value {v} is outside 00:00:00..23:59:59.999999 and cannot be an Arrow time; {TIME_REMEDY}")
    return (dt.datetime.min + v).time()


def _finite_decimal(v: Any) -> Any:
    # PostgreSQL numeric also holds NaN and +/-Infinity, which no decimal type can: stop, never round.
    if isinstance(v, Decimal) and not v.is_finite():
        raise ValueError(f"{v} is not a finite number, which a decimal cannot hold; {NON_FINITE_REMEDY}")
    return v


def _json_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def _bit_to_int(v: Any) -> int:
    return int.from_bytes(v, "big") if isinstance(v, (bytes, bytearray)) else int(v)


def _parse_datetime(v: Any) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))


def _parse_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])


def _parse_time(v: Any) -> dt.time:
    return v if isinstance(v, dt.time) else dt.time.fromisoformat(str(v))


def _decimal(scale: int) -> Converter:
    quantum = Decimal(1).scaleb(-scale)

    def one(v: Any) -> Decimal:
        # SQLite stores NUMERIC(p,s) as REAL or INTEGER; the declared scale recovers the decimal the
        # application wrote, but only when that is the same float: anything else would be rounding.
        d = v if isinstance(v, Decimal) else Decimal(repr(v) if isinstance(v, float) else str(v))
        q = d.quantize(quantum)
        if q != d and float(q) != float(d):
            raise ValueError(f"{v!r} has more decimal places than the declared scale {scale}")
        return q

    return _map_values(one)


def _decimal_type(precision: int | None, scale: int | None) -> pa.DataType:
    if precision is None:
        return UNBOUNDED_NUMERIC
    scale = scale or 0
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def _timestamp(tz_aware: bool) -> pa.DataType:
    return pa.timestamp("us", tz="UTC" if tz_aware else None)


def column_spec(dialect: str, name: str, type_: sa.types.TypeEngine[Any], nullable: bool = True) -> ColumnSpec:
    """Map one reflected column to its ColumnSpec for `dialect` (postgresql, mysql, sqlite)."""
    source_type = _type_text(type_, dialect)
    mapper = {"postgresql": _postgres, "mysql": _mysql, "mariadb": _mysql, "sqlite": _sqlite}[dialect]
    arrow_type, logical, cast_to, convert = mapper(type_)
    return ColumnSpec(name, source_type, arrow_type, nullable, logical, cast_to, convert, type_)


def _type_text(type_: sa.types.TypeEngine[Any], dialect: str) -> str:
    try:
        return str(type_.compile(dialect=_dialect(dialect)))
    except Exception:  # an exotic reflected type may not compile; its repr still identifies it
        return repr(type_)


@functools.cache
def _dialect(name: str) -> sa.engine.Dialect:
    # Imported on first use: a run reads one dialect, and each of SQLAlchemy's costs 5-20 ms to import.
    module = importlib.import_module(f"sqlalchemy.dialects.{'mysql' if name == 'mariadb' else name}")
    dialect: sa.engine.Dialect = module.dialect()
    return dialect


_Mapping = tuple[pa.DataType, str | None, sa.types.TypeEngine[Any] | None, Converter | None]


def _postgres(t: sa.types.TypeEngine[Any]) -> _Mapping:
    if isinstance(t, sa.ARRAY):
        item, logical, cast_to, _ = _postgres(t.item_type)
        # Arrays of enums, json or other casted items arrive as text literals; read them as text[].
        if cast_to is not None or logical is not None:
            from sqlalchemy.dialects.postgresql import ARRAY

            return pa.list_(pa.string()), logical, ARRAY(sa.Text()), None
        return pa.list_(item), None, None, None
    if isinstance(t, sa.Boolean):
        return pa.bool_(), None, None, None
    if isinstance(t, sa.SmallInteger):
        return pa.int16(), None, None, None
    if isinstance(t, sa.BigInteger):
        return pa.int64(), None, None, None
    if isinstance(t, sa.Integer):
        return pa.int32(), None, None, None
    if isinstance(t, sa.Float):
        return (pa.float32() if isinstance(t, sa.REAL) else pa.float64()), None, None, None
    if isinstance(t, sa.Numeric):
        # The converter serves the row path; ADBC's numeric text is checked by `arrow.conform`.
        return _decimal_type(t.precision, t.scale), None, None, _map_values(_finite_decimal)
    if isinstance(t, sa.DateTime):
        return _timestamp(bool(t.timezone)), None, None, None
    if isinstance(t, sa.Date):
        return pa.date32(), None, None, None
    if isinstance(t, sa.CHAR):
        # PostgreSQL's own char(n) -> text cast drops the trailing blanks (MySQL returns CHAR without
        # them too), so `WHERE c = 'BUILDING'` finds the row in the warehouse. Comparisons in the source
        # (keyset pagination on a char key) stay bpchar and ignore trailing blanks, so they agree.
        return pa.string(), None, sa.Text(), None
    if isinstance(t, sa.Time):
        if t.timezone:
            return pa.string(), "timetz", sa.Text(), None
        return pa.time64("us"), None, None, None
    if isinstance(t, sa.JSON):
        return pa.string(), "json", sa.Text(), None
    if isinstance(t, sa.Uuid):
        return pa.string(), "uuid", sa.Text(), None
    if isinstance(t, sa.Enum):
        return pa.string(), "enum", sa.Text(), None
    if isinstance(t, sa.LargeBinary):
        return pa.binary(), None, None, _map_values(_to_bytes)
    if isinstance(t, sa.String):
        return pa.string(), None, None, None
    log.info("PostgreSQL type %s has no Arrow mapping; it is replicated as its text form", t)
    return pa.string(), "text", sa.Text(), None


def _mysql(t: sa.types.TypeEngine[Any]) -> _Mapping:
    unsigned = bool(getattr(t, "unsigned", False))
    if isinstance(t, mysql.TINYINT):
        return (pa.uint8() if unsigned else pa.int8()), None, None, None
    if isinstance(t, sa.SmallInteger):
        return (pa.uint16() if unsigned else pa.int16()), None, None, None
    if isinstance(t, mysql.MEDIUMINT):
        return (pa.uint32() if unsigned else pa.int32()), None, None, None
    if isinstance(t, sa.BigInteger):
        return (pa.uint64() if unsigned else pa.int64()), None, None, None
    if isinstance(t, sa.Integer):
        return (pa.uint32() if unsigned else pa.int32()), None, None, None
    if isinstance(t, mysql.YEAR):
        return pa.int16(), None, None, None
    if isinstance(t, mysql.BIT):
        return pa.uint64(), None, None, _map_values(_bit_to_int)
    if isinstance(t, sa.Boolean):
        return pa.bool_(), None, None, None
    if isinstance(t, (mysql.DOUBLE, mysql.REAL)):
        return pa.float64(), None, None, None
    if isinstance(t, mysql.FLOAT):
        return pa.float32(), None, None, None
    if isinstance(t, sa.Float):
        return pa.float64(), None, None, None
    if isinstance(t, sa.Numeric):
        return _decimal_type(t.precision, t.scale), None, None, None
    if isinstance(t, mysql.TIMESTAMP):
        # The session runs with time_zone '+00:00', so TIMESTAMP values arrive as UTC.
        return _timestamp(True), None, None, _map_values(lambda v: v.replace(tzinfo=dt.timezone.utc))
    if isinstance(t, sa.DateTime):
        return _timestamp(False), None, None, None
    if isinstance(t, sa.Date):
        return pa.date32(), None, None, None
    if isinstance(t, sa.Time):
        return pa.time64("us"), None, None, _map_values(_timedelta_to_time)
    if isinstance(t, sa.JSON):
        return pa.string(), "json", None, _map_values(_json_text)
    if isinstance(t, sa.Enum):
        return pa.string(), "enum", None, None
    if isinstance(t, (sa.LargeBinary, mysql.VARBINARY, mysql.BINARY, sa.types._Binary)):
        return pa.binary(), None, None, _map_values(_to_bytes)
    if isinstance(t, sa.String):
        return pa.string(), None, None, None
    log.info("MySQL type %s has no Arrow mapping; it is replicated as text", t)
    return pa.string(), "text", None, _map_values(str)


def _sqlite(t: sa.types.TypeEngine[Any]) -> _Mapping:
    # SQLite stores values by affinity, so every column is parsed from what the driver returns.
    if isinstance(t, sa.Boolean):
        return pa.bool_(), None, None, _map_values(bool)
    if isinstance(t, sa.Integer):
        return pa.int64(), None, None, _map_values(int)
    if isinstance(t, sa.Float):
        return pa.float64(), None, None, _map_values(float)
    if isinstance(t, sa.Numeric):
        if t.precision is None:
            # Bare NUMERIC in SQLite holds what its affinity stored, an integer or a REAL: keep the double.
            return pa.float64(), None, None, _map_values(float)
        return _decimal_type(t.precision, t.scale), None, None, _decimal(t.scale or 0)
    if isinstance(t, sa.DateTime):
        return _timestamp(bool(t.timezone)), None, None, _map_values(_parse_datetime)
    if isinstance(t, sa.Date):
        return pa.date32(), None, None, _map_values(_parse_date)
    if isinstance(t, sa.Time):
        return pa.time64("us"), None, None, _map_values(_parse_time)
    if isinstance(t, sa.JSON):
        return pa.string(), "json", None, _map_values(_json_text)
    if isinstance(t, sa.LargeBinary):
        return pa.binary(), None, None, _map_values(_to_bytes)
    return pa.string(), None, None, _map_values(lambda v: v if isinstance(v, str) else str(v))


# Iceberg has no unsigned integers and no decimal wider than 38 digits. A project that publishes to Iceberg
# gets, for those columns only: unsigned integers widened to the next signed type (uint64 to int64, with a
# value above 9223372036854775807 stopping the sync: no auto-increment id gets there, and ids stay integers
# that join with other tables' bigint keys), and wide decimals as their exact text with every declared
# decimal, marked `decimal(p,s)` so the PostgreSQL warehouse still holds numeric(p,s).
_MAX_LONG = 2**63 - 1
_SIGNED = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.uint64(): pa.int64()}


def iceberg_compatible(spec: ColumnSpec) -> ColumnSpec:
    """`spec` with an Arrow type every Iceberg reader accepts (other columns unchanged)."""
    t = spec.arrow_type
    if t == pa.uint64():
        return replace(spec, arrow_type=pa.int64(), convert=_then(spec.convert, _map_values(_long)))
    if t in _SIGNED:
        return replace(spec, arrow_type=_SIGNED[t])
    if pa.types.is_decimal256(t):
        return replace(spec, arrow_type=pa.string(), logical=decimal_text_logical(t.precision, t.scale),
                       convert=_then(spec.convert, _decimal_text(t.scale)))
    return spec


def _long(v: Any) -> int:
    if v > _MAX_LONG:
        raise ValueError(f"{v} is above {_MAX_LONG}; {UNSIGNED_REMEDY}")
    return int(v)


def _then(first: Converter | None, second: Converter) -> Converter:
    return second if first is None else (lambda values: second(first(values)))


def _decimal_text(scale: int) -> Converter:
    exponent = Decimal(1).scaleb(-scale)
    context = Context(prec=1000)

    def one(v: Any) -> str:
        v = _finite_decimal(Decimal(v))
        q = v.quantize(exponent, context=context)
        if q != v:
            raise ValueError(f"{v!r} has more decimal places than the declared scale {scale}")
        return format(q, "f")

    return _map_values(one)
