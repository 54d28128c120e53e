"""The current-state rule, once, with one renderer per engine that applies it.

Per key, the latest version is the row of the highest `_batch_id`, then the highest effective watermark
(the watermark, or the fallback column's value where it is NULL; NULL ranks lowest). A key whose latest
version is a deletion marker (`_deleted` true) is not in the current state. A batch written before the
lake had deletion markers has no `_deleted` column: its rows read as `_deleted` false, and so does a NULL
`_deleted` (a file older than the column, read with newer ones).

`CurrentStateRule` describes the rule for one table. It renders as Arrow (the lake reader: every lake
type, decimal256 among them, stays exact), as DuckDB SQL and as PostgreSQL SQL (the warehouses). The SQL
renderers take the dialect's identifier quoting, so only quoted identifiers ever enter the text. Rows
tied on batch and watermark have no defined order between them: Arrow keeps the last one read, SQL any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from . import watermark as wm

if TYPE_CHECKING:
    from .config import TableConfig

__all__ = ["BATCH_COLUMN", "DELETED_COLUMN", "DELETED_DEFAULT", "CurrentStateRule", "Quote"]

BATCH_COLUMN = "_batch_id"
DELETED_COLUMN = "_deleted"
DELETED_DEFAULT = False  # the value of `_deleted` in a batch without the column, and of a NULL one

Quote = Callable[[str], str]
"""A dialect's identifier quoting: a name in, the quoted identifier out."""

_ORDER, _VALID, _RANK = "__replicator_order", "__replicator_valid", "__replicator_rank"
_SQL_DEFAULT = "TRUE" if DELETED_DEFAULT else "FALSE"


@dataclass(frozen=True, kw_only=True)
class CurrentStateRule:
    """The current-state rule of one table: its key columns and the watermark that orders a batch's versions.

    `watermark` None: only the batch orders versions. `fallback`: the column whose value stands in for a
    NULL watermark (`on_null_watermark.fallback`).
    """

    key: tuple[str, ...]
    watermark: str | None = None
    fallback: str | None = None

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("CurrentStateRule: the key needs at least one column")
        if self.fallback is not None and self.watermark is None:
            raise ValueError("CurrentStateRule: a fallback needs a watermark")

    @classmethod
    def of(cls, table: TableConfig) -> CurrentStateRule:
        """The rule of a configured table: its primary key, watermark and `on_null_watermark.fallback`."""
        return cls(key=tuple(table.primary_key), watermark=table.watermark, fallback=table.null_fallback)

    @property
    def columns(self) -> list[str]:
        """Every column the rule reads: the key, the order columns, `_batch_id` and `_deleted`."""
        order = [c for c in (self.watermark, self.fallback) if c]
        return list(dict.fromkeys([*self.key, *order, BATCH_COLUMN, DELETED_COLUMN]))

    # Arrow: the lake reader.

    def latest(self, data: pa.Table) -> pa.Table:
        """Per key, its latest version (deletion markers included), every column."""
        if self.watermark is None:
            ordered = data.sort_by([(BATCH_COLUMN, "ascending")])
        else:
            order = wm.effective(data, self.watermark, self.fallback)
            # Sorted by batch, then watermark (NULL lowest), the last row of each key is its latest version.
            ordered = data.append_column(_VALID, pc.is_valid(order)).append_column(_ORDER, order).sort_by(
                [(BATCH_COLUMN, "ascending"), (_VALID, "ascending"), (_ORDER, "ascending")]
            ).drop_columns([_VALID, _ORDER])
        ordered = ordered.append_column(_ORDER, pa.array(range(ordered.num_rows), pa.int64()))
        last = ordered.select([*self.key, _ORDER]).group_by(list(self.key), use_threads=False).aggregate(
            [(_ORDER, "max")])
        return ordered.take(last.column(f"{_ORDER}_max")).drop_columns([_ORDER])

    def current(self, data: pa.Table) -> pa.Table:
        """The current state: per key its latest version, keys whose latest version is deleted left out."""
        if data.num_rows == 0:
            return data
        latest = self.latest(data)
        if DELETED_COLUMN not in latest.column_names:
            return latest
        return latest.filter(pc.invert(pc.fill_null(latest.column(DELETED_COLUMN), DELETED_DEFAULT)))

    @staticmethod
    def table_schema(schema: pa.Schema) -> pa.Schema:
        """A batch's schema as the warehouse holds it: with `_deleted`, added when the batch predates it."""
        if DELETED_COLUMN in schema.names:
            return schema
        return schema.append(pa.field(DELETED_COLUMN, pa.bool_()))

    @staticmethod
    def with_deleted(batch: pa.RecordBatch) -> pa.RecordBatch:
        """A record batch with `_deleted`: the default for every row where the batch has no such column."""
        if DELETED_COLUMN in batch.schema.names:
            return batch
        return batch.append_column(DELETED_COLUMN, pa.repeat(pa.scalar(DELETED_DEFAULT), batch.num_rows))

    # SQL: the warehouses.

    def order_sql(self, quote: Quote) -> str:
        """ORDER BY terms putting each key's latest version first."""
        terms = [f"{quote(BATCH_COLUMN)} DESC"]
        if self.watermark is not None:
            value = quote(self.watermark)
            if self.fallback is not None:
                value = f"COALESCE({value}, {quote(self.fallback)})"
            terms.append(f"{value} DESC NULLS LAST")
        return ", ".join(terms)

    @staticmethod
    def deleted_sql(quote: Quote) -> str:
        """The condition "this row is a deletion marker", on rows that have `_deleted`."""
        return f"COALESCE({quote(DELETED_COLUMN)}, {_SQL_DEFAULT})"

    @classmethod
    def live_sql(cls, quote: Quote) -> str:
        """The condition "this row stays in the current state", on a key's latest version."""
        return f"NOT {cls.deleted_sql(quote)}"

    @staticmethod
    def default_columns_sql(names: Sequence[str], quote: Quote) -> list[str]:
        """Select-list items a batch lacks for the rule (`_deleted` with its default), to follow its columns."""
        return [] if DELETED_COLUMN in names else [f"{_SQL_DEFAULT} AS {quote(DELETED_COLUMN)}"]

    def duckdb_latest_sql(self, source: str, select_list: str, quote: Quote) -> str:
        """A DuckDB query of `select_list` over the latest version per key of relation `source` (quoted).

        row_number(), the plan the DuckDB loader's measured figures (bench/) were taken with.
        """
        key = ", ".join(quote(k) for k in self.key)
        return (f"SELECT {select_list} FROM (SELECT *, row_number() OVER (PARTITION BY {key} "  # noqa: S608
                f"ORDER BY {self.order_sql(quote)}) AS {_RANK} FROM {source}) WHERE {_RANK} = 1")

    def postgres_latest_sql(self, source: str, select_list: str, quote: Quote) -> str:
        """A PostgreSQL query of `select_list` over the latest version per key of relation `source` (quoted)."""
        key = ", ".join(quote(k) for k in self.key)
        return (f"SELECT DISTINCT ON ({key}) {select_list} FROM {source} "  # noqa: S608
                f"ORDER BY {key}, {self.order_sql(quote)}")
