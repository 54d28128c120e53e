"""The warehouse protocol: load committed lake batches in order, each with its ledger row, atomically."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import pyarrow as pa
import pyarrow.dataset as ds

__all__ = ["LEDGER_TABLE", "Loaded", "LoadSpec", "WarehouseLoader"]

LEDGER_TABLE = "_replicator_batches"


class Loaded(NamedTuple):
    """One table's line of the ledger, read by `loaded_tables`."""

    last_seq: int  # the highest lake batch id loaded
    rows: int | None  # rows in its table; None: not counted there (`row_count` tells)


@dataclass(frozen=True)
class LoadSpec:
    """What a loader needs of one table: its warehouse name, key, watermark and its NULL fallback column."""

    name: str
    primary_key: Sequence[str]
    watermark: str | None
    fallback: str | None = None


class WarehouseLoader(Protocol):
    """One loader per warehouse engine (duckdb, postgresql)."""

    schema: str

    def last_loaded_seq(self, table: str) -> int:
        """The highest lake batch id loaded into `table` (0: none)."""
        ...

    def load_batch(self, spec: LoadSpec, seq: int, full: bool, data: pa.Table | ds.Dataset) -> int:
        """Merge one batch and record `seq` in the ledger, in one transaction; return rows merged.

        `full` replaces the table's rows; otherwise a key's row is replaced only by a batch at least as new.
        `data` is read as a stream (a Dataset of the manifest's files), never all at once.
        """
        ...

    def row_count(self, table: str) -> int | None:
        """Rows in the table, None if it does not exist yet."""
        ...

    def loaded_tables(self) -> dict[str, Loaded]:
        """Per table in the ledger: the highest batch id loaded and, where counting is cheap, its rows.

        One look at the whole warehouse, so that a sync of many tables opens it only for those with a
        batch to load (opening a DuckDB file of 200 tables and closing it was 30 ms per table).
        """
        ...

    def keys(self, table: str, primary_key: Sequence[str]) -> pa.Table:
        """The primary keys present in the table (for reconciliation)."""
        ...

    def session(self) -> AbstractContextManager[None]:
        """Calls inside may share one connection (a table's load); it is released at the end."""
        ...

    def close(self) -> None: ...
