"""How a table's rows map to Hive-style partition folders: `city_id=7/dt=2026-11-30/`.

`partition_by` lists columns in folder order. A date or timestamp column becomes the `dt=` folder
at `partition_granularity` (UTC date, month or year); an integer or text column is an identity
partition named after itself, its value percent-encoded as pyarrow's Hive partitioning decodes it.
NULL goes to `__HIVE_DEFAULT_PARTITION__`, the folder Hive, Spark, pyarrow and DuckDB read as NULL,
so no folder ever mixes NULL and non-NULL values of a partition column. Without `partition_by` a
batch lands in `dt=` of its load date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from . import paths

__all__ = ["Layout", "check_partition_columns", "load_folder", "partition_column", "partition_folders"]

_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where a batch's rows land: folders by `partition_by` (empty: `dt=` of the load date)."""

    partition_by: tuple[str, ...]
    granularity: str
    load_date: dt.date


def _is_time(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t)


def _is_identity(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def check_partition_columns(columns: Sequence[str], types: Mapping[str, pa.DataType]) -> str | None:
    """Why `columns` cannot partition a table of these column types (a message naming the column), or None."""
    time_columns = [c for c in columns if _is_time(types[c])]
    if len(time_columns) > 1:
        return (f"partition_by: {time_columns[0]!r} and {time_columns[1]!r} are both dates/timestamps; "
                "only one can be the dt= folder, partition by the other as a column of the file")
    for c in columns:
        if not (_is_time(types[c]) or _is_identity(types[c])):
            return (f"partition_by: column {c!r} is {types[c]}; partition by a date or timestamp (dt= folders) "
                    "or by an integer or text column (its own folders)")
        if c == paths.PARTITION_KEY and time_columns and not _is_time(types[c]):
            return f"partition_by: column {c!r} would share the dt= folder name with the date column {time_columns[0]!r}"
    if len(set(columns)) != len(columns):
        return "partition_by: lists a column twice"
    return None


def partition_column(column: pa.Array | pa.ChunkedArray, granularity: str) -> pa.Array:
    """The `dt=` value of each row: UTC calendar date (or month, year) of a date/timestamp column."""
    if pa.types.is_date(column.type):
        column = pc.cast(column, pa.timestamp("us"))
    elif pa.types.is_timestamp(column.type) and column.type.tz is not None:
        # Dropping the zone keeps the stored UTC instant, so the partition is the UTC date.
        column = pc.cast(column, pa.timestamp(column.type.unit))
    values = pc.strftime(column, format=_FORMATS[granularity])
    return pc.fill_null(values, paths.NULL_PARTITION)


def _segment(table: pa.Table, column: str, granularity: str) -> pa.Array:
    """Each row's `name=value` folder segment for one partition column."""
    data = table.column(column).combine_chunks()
    if _is_time(data.type):
        return pc.binary_join_element_wise(f"{paths.PARTITION_KEY}=", partition_column(data, granularity), "")
    # Few distinct values per batch: encode the dictionary in Python, not every row.
    encoded = pc.dictionary_encode(data)
    names = [f"{column}={quote(str(v), safe='')}" for v in encoded.dictionary.to_pylist()]
    segments = pa.array(names, pa.string()).take(encoded.indices)
    return pc.fill_null(segments, f"{column}={paths.NULL_PARTITION}")


def load_folder(layout: Layout) -> str:
    """The folder of every row of a table without `partition_by`: `dt=` of the load date."""
    return f"{paths.PARTITION_KEY}={paths.partition_value(layout.load_date, layout.granularity)}"


def partition_folders(table: pa.Table, layout: Layout) -> pa.DictionaryArray:
    """Each row's folder relative to the table by `layout.partition_by`, dictionary-encoded (an entry per folder)."""
    segments = [_segment(table, c, layout.granularity) for c in layout.partition_by]
    joined = segments[0] if len(segments) == 1 else pc.binary_join_element_wise(*segments, "/")
    return pc.dictionary_encode(joined)
