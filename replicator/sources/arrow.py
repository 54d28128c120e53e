"""What both Arrow-native readers share: conforming batches to the exact schema, translating their errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ReplicatorError, SourceError, mask_secrets
from ..types import LOGICAL_KEY, SOURCE_TYPE_KEY, decimal_logical
from .errors import source_class, source_outcome
from .typemap import NON_FINITE_REMEDY, TIME_REMEDY, UNSIGNED_REMEDY

__all__ = ["conform", "reader_error"]

# The text forms of a non-finite numeric (PostgreSQL numeric holds NaN and +/-Infinity; ADBC spells them so).
_NON_FINITE = pa.array(["nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"])
# A time of day as MySQL prints it; anything else (negative, 24:00:00 and beyond) is a duration.
_TIME_OF_DAY = r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?$"


def conform(batch: pa.RecordBatch, schema: pa.Schema, table: str = "") -> pa.RecordBatch:
    """Cast what the driver delivered to the table's exact schema (decimal text is checked, never rounded).

    A value the schema cannot hold exactly stops the read with a SourceError naming `table` and the column.
    """
    arrays = []
    for array, field in zip(batch.columns, schema):
        if isinstance(array.type, pa.BaseExtensionType):  # ADBC's numeric is an opaque type over its text
            array = array.storage
        if pa.types.is_string(array.type) and _wide_decimal(field):  # its exact text: only check it is a number
            _finite(array, field, table)
        if array.type != field.type:
            if pa.types.is_string(array.type) and pa.types.is_time64(field.type):
                array = _time_of_day(array, field, table)
            else:
                array = _cast(array, field, table)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _where(table: str, field: pa.Field) -> str:
    source_type = (field.metadata or {}).get(SOURCE_TYPE_KEY, b"").decode()
    column = f"column {field.name!r}" + (f" ({source_type})" if source_type else "")
    return f"table {table!r}: {column}" if table else column


def _cast(array: pa.Array, field: pa.Field, table: str) -> pa.Array:
    try:
        return pc.cast(array, field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if pa.types.is_decimal(field.type) and pa.types.is_string(array.type):
            _finite(array, field, table)
        remedy = f"; {UNSIGNED_REMEDY}" if pa.types.is_unsigned_integer(array.type) else ""
        raise SourceError(f"{_where(table, field)}: a value does not fit {field.type}: {exc}{remedy}") from exc


def _wide_decimal(field: pa.Field) -> bool:
    return decimal_logical((field.metadata or {}).get(LOGICAL_KEY, b"").decode()) is not None


def _finite(text: pa.Array, field: pa.Field, table: str) -> None:
    """Stop on a decimal's text that is no number (PostgreSQL's NaN and Infinity)."""
    odd = text.filter(pc.fill_null(pc.is_in(pc.utf8_lower(text), _NON_FINITE), False))
    if len(odd):
        raise SourceError(f"{_where(table, field)} holds {odd[0].as_py()}, which a decimal cannot hold; "
                          f"{NON_FINITE_REMEDY}")


def _time_of_day(text: pa.Array, field: pa.Field, table: str) -> pa.Array:
    """MySQL TIME read as text: a time of day becomes time64, a duration beyond it stops the read."""
    bad = text.filter(pc.invert(pc.fill_null(pc.match_substring_regex(text, _TIME_OF_DAY), True)))
    if len(bad):
        raise SourceError(f"{_where(table, field)}: TIME value {bad[0].as_py()} is outside 00:00:00..23:59:59.999999 "
                          f"and cannot be an Arrow time; {TIME_REMEDY}")
    # Arrow parses ISO timestamps (with fractions) but not bare times: parse on the epoch's day.
    stamps = pc.cast(pc.binary_join_element_wise("1970-01-01 ", text, ""), pa.timestamp("us"))
    return pc.cast(pc.cast(stamps, pa.int64()), field.type)


def reader_error(source: str, exc: BaseException) -> ReplicatorError:
    """One line, secrets masked; retriable or not by the driver's codes (sources/errors.py)."""
    text = mask_secrets(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return source_class(source_outcome(exc))(f"source {source!r}: cannot read: {text}")
