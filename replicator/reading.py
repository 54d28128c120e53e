"""What an extract asks of a source: the table's schema, which rows to read, the reader protocol.

Plain data with no SQLAlchemy: the extract imports it at start-up, and only commands that open a
source import `sources` (and with it SQLAlchemy and the drivers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from .config import TableConfig
from .types import ColumnSpec, arrow_schema
from .watermark import Probe, SettleClock

__all__ = ["ReadRequest", "SourceReader", "TableSchema"]


@dataclass(frozen=True)
class TableSchema:
    """What replicator reads of one table: its columns in order and every column the source has."""

    columns: tuple[ColumnSpec, ...]
    source_columns: tuple[str, ...]

    @property
    def arrow(self) -> pa.Schema:
        return arrow_schema(self.columns)

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class ReadRequest:
    """Which rows to read.

    lower None: all rows. Otherwise rows whose watermark is >= lower (the fallback column's value where
    the watermark is NULL, if the table has one), plus NULL-watermark rows if asked; with
    `after_key`, rows at exactly `lower` only past that primary key (a keyset cursor through ties).
    """

    table: TableConfig
    schema: TableSchema
    lower: Any = None
    include_null_watermark: bool = False
    chunked: bool = False
    after_key: tuple[Any, ...] | None = None


class SourceReader(Protocol):
    """What an extract needs of a source."""

    name: str

    def describe(self, table: TableConfig) -> TableSchema: ...
    def settle_clock(self) -> SettleClock | None: ...
    def probe(self, table: TableConfig) -> Probe | None: ...
    def read(self, request: ReadRequest) -> Iterator[pa.RecordBatch]: ...
    def count_rows(self, table: TableConfig, where_null: str | None = None) -> int: ...
    def close(self) -> None: ...
