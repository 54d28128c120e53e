"""DuckDB warehouse: Arrow batches merged in one transaction with the ledger; no row-by-row inserts."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from ..config import parse_size
from ..current_state import CurrentStateRule
from ..duckdb_sql import ident, to_arrow
from ..machine import usable_cpus
from ..types import LOGICAL_KEY
from .base import LEDGER_TABLE, Loaded, LoadSpec
from .errors import duckdb_class

__all__ = ["DuckDBWarehouse", "wide_decimals"]

_LOGICAL_SQL = {"json": "JSON", "uuid": "UUID"}
_FLOOR_PER_THREAD_MIB = 16
_DUCKDB_ROW_GROUP_ROWS = 122_880  # DuckDB's storage row group
_DUCKDB_MAX_PRECISION = 38


def wide_decimals(schema: pa.Schema) -> dict[str, pa.DataType]:
    """The decimal columns wider than DuckDB's DECIMAL (38 digits): held as their exact text (VARCHAR)."""
    return {f.name: f.type for f in schema if pa.types.is_decimal(f.type) and f.type.precision > _DUCKDB_MAX_PRECISION}


def decimal_text(array: pa.Array) -> pa.Array:
    """A decimal256 column as its exact plain text with every declared decimal ('0.000', never '0E-3').

    Arrow's own decimal -> string cast writes scientific notation for small values; reading the same
    32 bytes as an integer (scale 0) and placing the point is exact and stays vectorized.
    """
    scale = array.type.scale
    digits = pc.cast(array.view(pa.decimal256(76, 0)), pa.string())
    if scale <= 0:
        return digits
    negative = pc.starts_with(digits, "-")
    magnitude = pc.utf8_lpad(pc.utf8_ltrim(digits, "-"), scale + 1, "0")
    text = pc.binary_join_element_wise(pc.utf8_slice_codeunits(magnitude, 0, -scale),
                                       pc.utf8_slice_codeunits(magnitude, -scale), ".")
    return pc.if_else(negative, pc.binary_join_element_wise("-", text, ""), text)


class DuckDBWarehouse:
    def __init__(self, path: str, schema: str, memory_limit: str | None = None) -> None:
        self.path = path
        self.schema = schema
        self.memory_limit = memory_limit
        # Per thread: a table's load holds a connection in the thread that loads, while extracts on other
        # threads may count rows (reconcile) on connections of their own; a connection is one thread's.
        self._local = threading.local()

    @contextmanager
    def session(self) -> Iterator[None]:
        """The calls inside share one connection, opened at the first and closed at the end.

        Opening the file and closing it (with its checkpoint) is most of a small table's load: 25 ms of
        each of the three calls a load makes (ledger, batch, count), 0.85 s of 2.8 s for 12 small tables.
        A load holds the file for itself only, so other processes open it between tables. One thread's.
        """
        local = self._local
        if getattr(local, "in_session", False):
            yield
            return
        local.in_session = True
        try:
            yield
        finally:
            local.in_session = False
            held, local.held = getattr(local, "held", None), None
            if held is not None:
                held.close()

    def _open(self, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        con = getattr(self._local, "held", None)
        if con is None:
            try:
                # No config at connect: the threads of one process share the file's database, and DuckDB
                # refuses a second connection whose config differs from the first's.
                con = duckdb.connect(self.path)
            except duckdb.Error as exc:  # an IOException here is another process's single-writer lock: retriable
                raise duckdb_class(exc, "connect")(f"warehouse: cannot open {self.path}: {str(exc).splitlines()[0]}") from exc
            if getattr(self._local, "in_session", False):
                self._local.held = con
        # An in-memory database has nowhere to spill, so it keeps DuckDB's default (80% of RAM).
        if memory_limit and self.path != ":memory:":  # re-rendered as bytes from its parsed value: no YAML text
            con.execute(f"SET memory_limit = '{parse_size(memory_limit)}B'")
        return con

    @contextmanager
    def _connect(self, memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._open(memory_limit)
        config = bool(memory_limit and self.path != ":memory:")
        try:
            yield con
        except duckdb.OutOfMemoryException as exc:
            limit = f"higher than {memory_limit}" if config else "to a size the machine has free (e.g. 2GB)"
            raise duckdb_class(exc, "use")(
                f"warehouse {self.path}: {str(exc).splitlines()[0]}; set warehouse.memory_limit {limit} "
                "in replicator.yml; nothing was loaded"
            ) from exc
        except duckdb.Error as exc:
            raise duckdb_class(exc, "use")(f"warehouse {self.path}: {str(exc).splitlines()[0]}") from exc
        finally:
            if con is not getattr(self._local, "held", None):
                con.close()

    def _load_memory_limit(self, data: pa.Table | ds.Dataset, full: bool) -> str | None:
        """The configured limit, or for `auto` one sized to the batch's row groups and DuckDB's threads.

        A bound keeps a load's memory flat however big the table (DuckDB spills beyond it; its own
        default is 80% of RAM), and DuckDB's pool fills up to it, so the limit is what a load costs.
        DuckDB holds about one row group per thread plus the one being appended: its own row groups of
        122,880 rows, or the Parquet file's when those are larger. Measured on 2 threads: 133 MB Parquet
        row groups (1 KB rows) load at 400MB and fail at 300MB; the bench's rides (114 B a row, 14 MB
        groups) insert 2M rows in 0.86 s at 128MiB, 1.0 s at 86MiB, 1.1-1.4 s at 72MiB (1.25 x 4 groups,
        chosen: the whole MariaDB sync then peaks at 290 MiB, 301 at 86MiB), 1.3 s at 48MiB.
        Below that a floor that grows with the threads: 8-column rides (66 B a row) insert in 40MiB on
        2 threads, 48MiB on 4 and 8 (not 40), 96MiB on 16 (not 64); an incremental merge (a hash join
        over the staged batch) needs more: 44MiB on 2 threads, 64MiB on 8 (not 48). With the former fixed
        128MiB floor those 8-column rides grew RSS by 67 MiB at 2M rows and 136 MiB at 20M (the pool
        only fills at 20M); with 48MiB by 54 and 61 MiB at about the same speed.
        """
        if self.memory_limit != "auto":
            return self.memory_limit
        largest = versions = size = 0
        if isinstance(data, ds.FileSystemDataset):
            for fragment in data.get_fragments():
                meta = fragment.metadata  # the footer only
                for i in range(meta.num_row_groups):
                    group = meta.row_group(i)
                    largest = max(largest, group.total_byte_size)
                    versions, size = versions + group.num_rows, size + group.total_byte_size
        group_bytes = max(largest, _DUCKDB_ROW_GROUP_ROWS * size // versions if versions else 0)
        threads = usable_cpus()
        floor = _FLOOR_PER_THREAD_MIB * (threads + (1 if full else 2))
        return f"{max(floor, math.ceil(1.25 * (threads + 2) * group_bytes / 2**20))}MiB"

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

    def loaded_tables(self) -> dict[str, Loaded]:
        if self._missing():
            return {}
        with self._connect() as con:
            if not self._exists(con, LEDGER_TABLE):
                return {}
            ledger = dict(con.execute(f"SELECT table_name, last_loaded_seq FROM {self._qualified(LEDGER_TABLE)}").fetchall())
            present = {row[0] for row in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = ?", [self.schema]).fetchall()}
            names = [n for n in ledger if n in present]
            counts: dict[str, int] = {}
            if names:
                counts = dict(con.execute(" UNION ALL ".join(
                    f"SELECT ? AS name, count(*) FROM {self._qualified(n)}" for n in names), names).fetchall())
        return {n: Loaded(int(seq), counts.get(n)) for n, seq in ledger.items()}

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
        rule = CurrentStateRule(key=tuple(spec.primary_key), watermark=spec.watermark, fallback=spec.fallback)
        select_list = ", ".join([*(
            f"CAST({ident(f.name)} AS {_LOGICAL_SQL[f.metadata[LOGICAL_KEY].decode()]}) AS {ident(f.name)}"
            if f.metadata and f.metadata.get(LOGICAL_KEY, b"").decode() in _LOGICAL_SQL else ident(f.name)
            for f in data.schema
        ), *rule.default_columns_sql(data.schema.names, ident)])
        live = rule.live_sql(ident)
        with self._connect(self._load_memory_limit(data, full)) as con:
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
                          f"({rule.duckdb_latest_sql('incoming', select_list, ident)})")
                con.execute(f"CREATE OR REPLACE TEMP VIEW staged_shape AS SELECT * FROM {source} LIMIT 0")
                created = not self._exists(con, spec.name)
                if created:
                    con.execute(f"CREATE TABLE {target} AS SELECT * FROM staged_shape")
                if full and not created:
                    con.execute(f"DELETE FROM {target}")
                self._follow_schema(con, target, spec.name, data.schema, empty=full)
                if full:
                    merged = int(con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {source} WHERE {live}").fetchone()[0])  # type: ignore[index]
                else:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT * FROM {source}")
                    match = " AND ".join(f"t.{k} = s.{k}" for k in key)
                    con.execute(f"DELETE FROM {target} AS t USING staged AS s WHERE {match} AND t._batch_id <= s._batch_id")
                    # Rows still present are newer than this batch (monotonic rule): keep them.
                    con.execute(f"DELETE FROM staged AS s WHERE EXISTS (SELECT 1 FROM {target} AS t WHERE {match})")
                    # A deleted key's older row is gone above; its marker is not inserted.
                    merged = int(con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM staged WHERE {live}").fetchone()[0])  # type: ignore[index]
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
        """Expose the batch as `incoming`: local Parquet files through DuckDB's own parallel reader.

        DuckDB's DECIMAL holds at most 38 digits: its Parquet reader turns a wider decimal into a DOUBLE
        (rounding it) and its Arrow scan refuses decimal256. Such columns are cast to their exact text in
        Arrow, batch by batch, and land in a temporary table DuckDB can spill.
        """
        wide = wide_decimals(data.schema)
        if wide:
            schema = pa.schema([f.with_type(pa.string()) if f.name in wide else f for f in data.schema])
            batches = (pa.RecordBatch.from_arrays(
                [decimal_text(c) if n in wide else c for c, n in zip(b.columns, b.schema.names)], schema=schema)
                for b in data.to_batches())
            con.register("incoming_exact", pa.RecordBatchReader.from_batches(schema, batches))
            con.execute("CREATE TEMP TABLE incoming AS SELECT * FROM incoming_exact")
            con.unregister("incoming_exact")
        elif isinstance(data, ds.FileSystemDataset) and isinstance(data.filesystem, pafs.LocalFileSystem):
            con.read_parquet(list(data.files)).create_view("incoming")
        else:
            con.register("incoming", data)

    def _follow_schema(self, con: duckdb.DuckDBPyConnection, target: str, table: str, schema: pa.Schema,
                       empty: bool) -> None:
        """Follow the lake's schema: add new columns and change the type of changed ones.

        An incremental batch only ever brings widened types (the lake refuses anything else), so the
        rows convert. A full batch replaces every row and the table was emptied first: any type change
        applies without converting a value (`USING NULL`), which is how `--full-refresh` recovers from an
        incompatible change (text -> int) without dropping the table.
        """
        have = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [self.schema, table]).fetchall())
        wanted = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'staged_shape' AND table_schema NOT IN (?)", [self.schema]).fetchall()
        changed = []
        for name, type_ in wanted:
            if name not in have:
                con.execute(f"ALTER TABLE {target} ADD COLUMN {ident(name)} {type_}")
                changed.append(name)
            elif have[name] != type_:
                using = f" USING CAST(NULL AS {type_})" if empty else ""
                con.execute(f"ALTER TABLE {target} ALTER COLUMN {ident(name)} TYPE {type_}{using}")
                changed.append(name)
        self._comment_source_types(con, target, table, schema, changed)

    def _comment_source_types(self, con: duckdb.DuckDBPyConnection, target: str, table: str, schema: pa.Schema,
                              changed: Sequence[str]) -> None:
        """Columns held as exact text say which decimal they hold; a column that changed type loses that note."""
        wide = wide_decimals(schema)
        comments = dict(con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
            [self.schema, table]).fetchall())
        for name in [*wide, *changed]:
            # Only identifiers and integers enter the SQL text (COMMENT takes no bound parameter).
            note = f"'decimal({wide[name].precision},{wide[name].scale})'" if name in wide else "NULL"
            if (comments.get(name) or "NULL") != note.strip("'"):
                con.execute(f"COMMENT ON COLUMN {target}.{ident(name)} IS {note}")

    def close(self) -> None:
        return None
