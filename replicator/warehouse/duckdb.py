"""DuckDB warehouse: Arrow batches merged in one transaction with the ledger; no row-by-row inserts."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from ..duckdb_sql import ident, to_arrow
from ..errors import WarehouseError, WarehouseUnavailable
from ..types import LOGICAL_KEY
from .base import LEDGER_TABLE, LoadSpec

__all__ = ["DuckDBWarehouse"]

_LOGICAL_SQL = {"json": "JSON", "uuid": "UUID"}
_AUTO_FLOOR_MIB = 128


class DuckDBWarehouse:
    def __init__(self, path: str, schema: str, memory_limit: str | None = None) -> None:
        self.path = path
        self.schema = schema
        self.memory_limit = memory_limit

    @contextmanager
    def _connect(self, memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # An in-memory database has nowhere to spill, so it keeps DuckDB's default (80% of RAM).
        config: dict[str, Any] = {"memory_limit": memory_limit} if memory_limit and self.path != ":memory:" else {}
        try:
            con = duckdb.connect(self.path, config=config)
        except duckdb.IOException as exc:
            # Another process holds DuckDB's single-writer file lock.
            raise WarehouseUnavailable(f"warehouse: cannot open {self.path}: {str(exc).splitlines()[0]}") from exc
        except duckdb.Error as exc:
            raise WarehouseError(f"warehouse: cannot open {self.path}: {str(exc).splitlines()[0]}") from exc
        try:
            yield con
        except duckdb.OutOfMemoryException as exc:
            limit = f"higher than {memory_limit}" if config else "to a size the machine has free (e.g. 2GB)"
            raise WarehouseError(
                f"warehouse {self.path}: {str(exc).splitlines()[0]}; set warehouse.memory_limit {limit} "
                "in replicator.yml; nothing was loaded"
            ) from exc
        except duckdb.Error as exc:
            raise WarehouseError(f"warehouse {self.path}: {str(exc).splitlines()[0]}") from exc
        finally:
            con.close()

    def _load_memory_limit(self, data: pa.Table | ds.Dataset) -> str | None:
        """The configured limit, or for `auto` one sized to the batch's widest Parquet row group.

        A bound keeps a load's memory flat however big the table (DuckDB spills beyond it; its own
        default is 80% of RAM), but DuckDB must still hold about one row group per thread plus the
        one being appended: measured, 133 MB row groups (1 KB rows) load at 400MB and fail at 300MB
        on 2 threads. The 2M-ride bench batch (14 MB groups) gets the 128MiB floor: peak RSS of the
        load 520 -> 290 MiB, about 10% slower.
        """
        if self.memory_limit != "auto":
            return self.memory_limit
        largest = 0
        if isinstance(data, ds.FileSystemDataset):
            for fragment in data.get_fragments():
                meta = fragment.metadata  # the footer only
                for i in range(meta.num_row_groups):
                    largest = max(largest, meta.row_group(i).total_byte_size)
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return f"{max(_AUTO_FLOOR_MIB, math.ceil((threads + 2) * largest / 2**20))}MiB"

    def _qualified(self, table: str) -> str:
        return f"{ident(self.schema)}.{ident(table)}"

    def _ensure_ledger(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._qualified(LEDGER_TABLE)} "
            "(table_name VARCHAR PRIMARY KEY, last_loaded_seq BIGINT NOT NULL, loaded_at TIMESTAMPTZ NOT NULL)"
        )

    def _exists(self, con: duckdb.DuckDBPyConnection, table: str) -> bool:
        return bool(con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [self.schema, table],
        ).fetchone()[0])  # type: ignore[index]

    def _missing(self) -> bool:
        """Reading must not create the database file (bad input writes nothing anywhere)."""
        return self.path != ":memory:" and not os.path.exists(self.path)

    def last_loaded_seq(self, table: str) -> int:
        if self._missing():
            return 0
        with self._connect() as con:
            if not self._exists(con, LEDGER_TABLE):
                return 0
            row = con.execute(
                f"SELECT last_loaded_seq FROM {self._qualified(LEDGER_TABLE)} WHERE table_name = ?", [table]
            ).fetchone()
            return int(row[0]) if row else 0

    def row_count(self, table: str) -> int | None:
        if self._missing():
            return None
        with self._connect() as con:
            if not self._exists(con, table):
                return None
            return int(con.execute(f"SELECT count(*) FROM {self._qualified(table)}").fetchone()[0])  # type: ignore[index]

    def keys(self, table: str, primary_key: Sequence[str]) -> pa.Table:
        with self._connect() as con:
            return to_arrow(con, f"SELECT {', '.join(ident(k) for k in primary_key)} FROM {self._qualified(table)}")

    def load_batch(self, spec: LoadSpec, seq: int, full: bool, data: pa.Table | ds.Dataset) -> int:
        target = self._qualified(spec.name)
        key = [ident(k) for k in spec.primary_key]
        order = "_batch_id DESC" + (f", {ident(spec.watermark)} DESC NULLS LAST" if spec.watermark else "")
        select_list = ", ".join(
            f"CAST({ident(f.name)} AS {_LOGICAL_SQL[f.metadata[LOGICAL_KEY].decode()]}) AS {ident(f.name)}"
            if f.metadata and f.metadata.get(LOGICAL_KEY, b"").decode() in _LOGICAL_SQL else ident(f.name)
            for f in data.schema
        )
        if "_deleted" not in data.schema.names:  # a batch written before the lake had deletion markers
            select_list += ", FALSE AS _deleted"
        with self._connect(self._load_memory_limit(data)) as con:
            # Row order in the table does not matter, and keeping it costs time and memory; a large
            # checkpoint threshold spares a rewrite of the whole table file after every small merge.
            con.execute("SET preserve_insertion_order = false")
            con.execute("SET checkpoint_threshold = '1GB'")
            con.execute("BEGIN TRANSACTION")
            try:
                self._ensure_ledger(con)
                self._register(con, data)
                # A full batch has one row per key by construction (keyset reads); an incremental one
                # is reduced to the newest version per key before it is merged.
                source = (f"(SELECT {select_list} FROM incoming)" if full else
                          f"(SELECT {select_list} FROM (SELECT *, row_number() OVER (PARTITION BY {', '.join(key)} "
                          f"ORDER BY {order}) AS _rn FROM incoming) WHERE _rn = 1)")
                con.execute(f"CREATE OR REPLACE TEMP VIEW staged_shape AS SELECT * FROM {source} LIMIT 0")
                if not self._exists(con, spec.name):
                    con.execute(f"CREATE TABLE {target} AS SELECT * FROM staged_shape")
                else:
                    self._add_missing_columns(con, target, spec.name)
                if full:
                    con.execute(f"DELETE FROM {target}")
                    merged = int(con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {source} WHERE NOT _deleted").fetchone()[0])  # type: ignore[index]
                else:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT * FROM {source}")
                    match = " AND ".join(f"t.{k} = s.{k}" for k in key)
                    con.execute(f"DELETE FROM {target} AS t USING staged AS s WHERE {match} AND t._batch_id <= s._batch_id")
                    # Rows still present are newer than this batch (monotonic rule): keep them.
                    con.execute(f"DELETE FROM staged AS s WHERE EXISTS (SELECT 1 FROM {target} AS t WHERE {match})")
                    # A deleted key's older row is gone above; its marker is not inserted.
                    merged = int(con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM staged WHERE NOT _deleted").fetchone()[0])  # type: ignore[index]
                    con.execute("DROP TABLE staged")
                con.execute(
                    f"INSERT OR REPLACE INTO {self._qualified(LEDGER_TABLE)} VALUES (?, ?, now())", [spec.name, seq]
                )
                con.execute("DROP VIEW staged_shape")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return merged

    @staticmethod
    def _register(con: duckdb.DuckDBPyConnection, data: pa.Table | ds.Dataset) -> None:
        """Expose the batch as `incoming`: local Parquet files through DuckDB's own parallel reader."""
        if isinstance(data, ds.FileSystemDataset) and isinstance(data.filesystem, pafs.LocalFileSystem):
            con.read_parquet(list(data.files)).create_view("incoming")
        else:
            con.register("incoming", data)

    def _add_missing_columns(self, con: duckdb.DuckDBPyConnection, target: str, table: str) -> None:
        """Follow the lake's schema: add new columns, widen changed ones (the lake allows only widening)."""
        have = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [self.schema, table]).fetchall())
        for name, type_ in con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                       "WHERE table_name = 'staged_shape' AND table_schema NOT IN (?)", [self.schema]).fetchall():
            if name not in have:
                con.execute(f"ALTER TABLE {target} ADD COLUMN {ident(name)} {type_}")
            elif have[name] != type_:
                con.execute(f"ALTER TABLE {target} ALTER COLUMN {ident(name)} TYPE {type_}")

    def close(self) -> None:
        return None
