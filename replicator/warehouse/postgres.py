"""PostgreSQL warehouse: Arrow record batches by binary COPY (ADBC bulk ingest), one merge and the ledger
row, all in one transaction of one connection.

A full batch is ingested straight into the emptied table; an incremental one into a temporary stage,
then merged. No value passes through Python: each column travels in the binary form of its warehouse
type, after at most an Arrow cast (see `_wire_type`, `_wire_column`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from typing import Any
from urllib.parse import parse_qsl, urlparse

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc_pg
import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from psycopg2 import sql

from ..current_state import DELETED_COLUMN, CurrentStateRule
from ..errors import WarehouseError, mask_secrets
from ..types import LOGICAL_KEY, decimal_logical
from .base import LEDGER_TABLE, Loaded, LoadSpec
from .errors import postgres_class, postgres_warehouse_error

__all__ = ["PostgresWarehouse", "pg_type"]

_STAGE = "replicator_stage"
_BATCH_ROWS = 16_384  # rows per record batch streamed to COPY: memory holds about two of them
_JSONB_VERSION = pa.scalar("\x01")  # jsonb's binary input is a version byte (1) and the JSON text


def pg_type(field: pa.Field) -> str:
    """The PostgreSQL column type that keeps every value of an Arrow field."""
    t = field.type
    logical = (field.metadata or {}).get(LOGICAL_KEY, b"").decode()
    if logical == "json":
        return "jsonb"
    if logical == "uuid":
        return "uuid"
    wide = decimal_logical(logical)
    if wide is not None:  # a wide decimal's exact text (lake.iceberg): numeric again here
        return f"numeric({wide[0]},{wide[1]})"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pg_type(pa.field("item", t.value_type)) + "[]"
    simple = {
        pa.int8(): "smallint", pa.int16(): "smallint", pa.int32(): "integer", pa.int64(): "bigint",
        pa.uint8(): "smallint", pa.uint16(): "integer", pa.uint32(): "bigint", pa.uint64(): "numeric(20,0)",
        pa.float32(): "real", pa.float64(): "double precision", pa.bool_(): "boolean", pa.string(): "text",
        pa.large_string(): "text", pa.binary(): "bytea", pa.large_binary(): "bytea", pa.date32(): "date",
        pa.time64("us"): "time",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_duration(t):
        return "interval"
    raise WarehouseError(f"warehouse: no PostgreSQL type for Arrow type {t} of column {field.name!r}")


def _logical(field: pa.Field) -> str:
    return (field.metadata or {}).get(LOGICAL_KEY, b"").decode()


def _wire_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type whose binary COPY form is that of the column's warehouse type.

    ADBC writes each Arrow type as one PostgreSQL type (int8 as smallint, uint32 as bigint, decimals as
    numeric, date32 as date from its day count, timestamps from their microseconds, lists as arrays), so
    only uint64, which it would write as a (wrapping) bigint, is cast first: to decimal128(20,0), exact.
    """
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_wire_type(t.value_type))
    if t == pa.uint64():
        return pa.decimal128(20, 0)
    return t


def _stage_type(field: pa.Field) -> str:
    """The stage column's type: the warehouse type, except uuid and a wide decimal's text, staged as text
    and cast by the merge (no Arrow cast gives their binary form from the lake's text)."""
    return "text" if _logical(field) == "uuid" or decimal_logical(_logical(field)) else pg_type(field)


def _wire_column(field: pa.Field, column: pa.Array) -> pa.Array:
    if _logical(field) == "json":  # into jsonb: the text behind its version byte (psycopg 3 sends it so)
        return pc.binary_join_element_wise(_JSONB_VERSION, column, "")
    return _as(column, _wire_type(field.type))


class _Stream:
    """A batch's rows as record batches of their wire types, read one at a time; counts deletion markers.

    A batch that predates deletion markers gets `_deleted` with the rule's default, as in every engine.
    """

    def __init__(self, data: pa.Table | ds.Dataset) -> None:
        self.data = data
        self.fields = list(CurrentStateRule.table_schema(data.schema))
        self.schema = pa.schema([pa.field(f.name, _wire_type(f.type)) for f in self.fields])
        self.deleted = 0
        self.rows = 0  # as COPY reported them

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for batch in map(CurrentStateRule.with_deleted, _read(self.data)):
            self.deleted += int(pc.sum(batch.column(DELETED_COLUMN)).as_py() or 0)
            yield pa.record_batch([_wire_column(f, c) for f, c in zip(self.fields, batch.columns)], schema=self.schema)


def _read(data: pa.Table | ds.Dataset) -> Iterator[pa.RecordBatch]:
    """The batch's rows in the batch's schema, one Parquet row group at a time.

    Files are read one by one with ParquetFile: the dataset scanner decoded whole files ahead of its
    consumer even without read-ahead (365 MB of Arrow buffers for a 2M-row batch). A file written before
    the schema evolved gets NULL for a column it lacks and its narrower types widened, as the scanner does.
    """
    if isinstance(data, pa.Table):
        yield from data.to_batches(max_chunksize=_BATCH_ROWS)
        return
    if not isinstance(data, ds.FileSystemDataset):
        yield from data.to_batches(batch_size=_BATCH_ROWS)
        return
    schema = data.schema
    for path in data.files:
        with data.filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = [f.name for f in schema if f.name in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=present):
                columns = [_as(batch.column(f.name), f.type) if f.name in present else pa.nulls(batch.num_rows, f.type)
                           for f in schema]
                yield pa.record_batch(columns, schema=schema)


def _as(column: pa.Array, wanted: pa.DataType) -> pa.Array:
    return column if column.type == wanted else column.cast(wanted)


def _ident(name: str) -> str:
    """A quoted identifier, as libpq's PQescapeIdentifier writes it (ADBC has no quoting of its own)."""
    if "\0" in name:
        raise WarehouseError(f"warehouse: identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _adbc_uri(dsn: str) -> str:
    """The warehouse URL for libpq through ADBC, with the connect timeout psycopg2 connections get."""
    if "connect_timeout" in dict(parse_qsl(urlparse(dsn).query)):
        return dsn
    return dsn + ("&" if "?" in dsn else "?") + "connect_timeout=10"


def _adbc_message(exc: Exception) -> str:
    """The server's first line of an ADBC error, without the driver's status prefix."""
    text = str(exc).strip()
    if "ERROR:  " in text:
        text = text.split("ERROR:  ", 1)[1]
    return mask_secrets(text.splitlines()[0] if text else type(exc).__name__)


def _canonical(pg: str) -> str:
    """format_type()'s spelling of the types pg_type() writes."""
    names = {"timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
             "time": "time without time zone", "jsonb": "jsonb", "uuid": "uuid"}
    if pg.endswith("[]"):
        return _canonical(pg[:-2]) + "[]"
    return names.get(pg, pg)


class PostgresWarehouse:
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema

    @contextmanager
    def _connect(self) -> Iterator[psycopg2.extensions.connection]:
        try:
            con = psycopg2.connect(self.dsn, connect_timeout=10)
        except psycopg2.Error as exc:
            raise postgres_warehouse_error(exc, "connect") from exc
        try:
            yield con
        except psycopg2.Error as exc:
            con.rollback()
            raise postgres_warehouse_error(exc, "use") from exc
        finally:
            con.close()

    def session(self) -> AbstractContextManager[None]:
        return nullcontext()  # a connection per call: a server connects in milliseconds and holds no file lock

    def _qualified(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))

    def _exists(self, cur: Any, table: str) -> bool:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table)).as_string(cur)])
        return bool(cur.fetchone()[0])

    def last_loaded_seq(self, table: str) -> int:
        with self._connect() as con, con.cursor() as cur:
            if not self._exists(cur, LEDGER_TABLE):
                return 0
            cur.execute(sql.SQL("SELECT last_loaded_seq FROM {} WHERE table_name = %s").format(self._qualified(LEDGER_TABLE)), [table])
            row = cur.fetchone()
            return int(row[0]) if row else 0

    def loaded_tables(self) -> dict[str, Loaded]:
        # No counts: count(*) scans the table here, and a table that gets loaded is counted after its load.
        with self._connect() as con, con.cursor() as cur:
            if not self._exists(cur, LEDGER_TABLE):
                return {}
            cur.execute(sql.SQL("SELECT table_name, last_loaded_seq FROM {}").format(self._qualified(LEDGER_TABLE)))
            return {str(name): Loaded(int(seq), None) for name, seq in cur.fetchall()}

    def row_count(self, table: str) -> int | None:
        with self._connect() as con, con.cursor() as cur:
            if not self._exists(cur, table):
                return None
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(self._qualified(table)))
            return int(cur.fetchone()[0])

    def keys(self, table: str, primary_key: Sequence[str]) -> pa.Table:
        with self._connect() as con, con.cursor() as cur:
            cur.execute(sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(sql.Identifier(k) for k in primary_key), self._qualified(table)))
            rows = cur.fetchall()
        return pa.table({k: [r[i] for r in rows] for i, k in enumerate(primary_key)})

    @contextmanager
    def _load_connection(self) -> Iterator[Any]:
        """An ADBC connection for one load: every statement until `commit()` runs in one transaction."""
        try:
            con = adbc_pg.connect(_adbc_uri(self.dsn))
        except adbc_driver_manager.Error as exc:
            # ADBC's errors carry PEP 249 types and libpq's text, which postgres_class reads.
            raise postgres_class(exc, "connect")(f"warehouse: cannot connect: {_adbc_message(exc)}") from exc
        try:
            with closing(con.cursor()) as cur:
                yield con, cur
        except adbc_driver_manager.Error as exc:
            raise postgres_class(exc, "use")(f"warehouse: {_adbc_message(exc)}") from exc
        finally:
            con.close()  # without a commit, the server rolls the transaction back

    def _target(self, table: str) -> str:
        return f"{_ident(self.schema)}.{_ident(table)}"

    def load_batch(self, spec: LoadSpec, seq: int, full: bool, data: pa.Table | ds.Dataset) -> int:
        target = self._target(spec.name)
        schema = CurrentStateRule.table_schema(data.schema)  # what the stream sends (see _Stream)
        key = ", ".join(_ident(k) for k in spec.primary_key)
        defs = ", ".join(f"{_ident(f.name)} {pg_type(f)}" for f in schema)
        with self._load_connection() as (con, cur):
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(self.schema)}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self._target(LEDGER_TABLE)} (table_name text PRIMARY KEY, "
                        "last_loaded_seq bigint NOT NULL, loaded_at timestamptz NOT NULL)")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {target} ({defs}, PRIMARY KEY ({key}))")
            if full:
                # Emptied first, so the schema below follows the batch without converting a single value.
                cur.execute(f"DELETE FROM {target}")  # noqa: S608 - quoted by _ident
            self._follow_schema(cur, spec.name, schema, empty=full)
            if full:
                self._follow_key(cur, spec)
            staged = [f for f in schema if _stage_type(f) != pg_type(f)]
            if full and not staged:
                merged = self._load_full(cur, spec, data)
            else:
                merged = self._merge(cur, spec, full, data, schema)
            cur.execute(f"INSERT INTO {self._target(LEDGER_TABLE)} VALUES ($1, $2, now()) ON CONFLICT (table_name) "  # noqa: S608
                        "DO UPDATE SET last_loaded_seq = EXCLUDED.last_loaded_seq, loaded_at = EXCLUDED.loaded_at",
                        [spec.name, seq])
            con.commit()
            return merged

    def _load_full(self, cur: Any, spec: LoadSpec, data: pa.Table | ds.Dataset) -> int:
        """A full batch straight into the emptied table: one row per key by construction (keyset reads,
        compaction's current state), so the primary key refuses, and rolls back, a batch that breaks that."""
        stream = self._copy(cur, data, spec.name, self.schema)
        merged = stream.rows
        if stream.deleted:
            cur.execute(f"DELETE FROM {self._target(spec.name)} WHERE {CurrentStateRule.deleted_sql(_ident)}")  # noqa: S608 - quoted
            merged -= cur.rowcount
        return merged

    def _merge(self, cur: Any, spec: LoadSpec, full: bool, data: pa.Table | ds.Dataset, schema: pa.Schema) -> int:
        """Stage the batch, then keep per key its newest version, where it is at least as new as the table's."""
        target = self._target(spec.name)
        stage_defs = ", ".join(f"{_ident(f.name)} {_stage_type(f)}" for f in schema)
        cur.execute(f"CREATE TEMP TABLE {_STAGE} ({stage_defs}) ON COMMIT DROP")
        self._copy(cur, data, _STAGE, None)
        rule = CurrentStateRule(key=tuple(spec.primary_key), watermark=spec.watermark, fallback=spec.fallback)
        keys = [_ident(k) for k in spec.primary_key]
        if not full:
            match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
            cur.execute(f"DELETE FROM {target} AS t USING {_STAGE} AS s WHERE {match} AND t._batch_id <= s._batch_id")  # noqa: S608
        cols = ", ".join(_ident(f.name) for f in schema)
        casts = ", ".join(f"{_ident(f.name)}::{pg_type(f)}" if _stage_type(f) != pg_type(f) else _ident(f.name)
                          for f in schema)
        # The newest version per key; a deleted key's marker removes its row and is not inserted.
        cur.execute(f"INSERT INTO {target} ({cols}) SELECT {casts} FROM ({rule.postgres_latest_sql(_STAGE, cols, _ident)}) "  # noqa: S608
                    f"AS latest WHERE {rule.live_sql(_ident)} ON CONFLICT ({', '.join(keys)}) DO NOTHING")
        return int(cur.rowcount)

    def _follow_schema(self, cur: Any, table: str, schema: pa.Schema, empty: bool) -> None:
        """Add new columns and change the type of changed ones, as the lake's schema evolved.

        An incremental batch only brings widened types, so existing rows convert. A full batch replaces
        every row and the table was emptied first: any type change applies without converting a value
        (`USING NULL`), so `--full-refresh` after an incompatible change (text -> int) keeps the table,
        its grants and the views on its other columns. A view on a changed column blocks the change.
        """
        cur.execute("SELECT column_name, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c "
                    "JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(c.table_schema) || '.' || quote_ident(c.table_name)) "
                    "AND a.attname = c.column_name WHERE c.table_schema = $1 AND c.table_name = $2", [self.schema, table])
        have = dict(cur.fetchall())
        target = self._target(table)
        for f in schema:
            wanted = pg_type(f)
            if f.name not in have:
                cur.execute(f"ALTER TABLE {target} ADD COLUMN {_ident(f.name)} {wanted}")
            elif have[f.name] != _canonical(wanted):
                self._refuse_if_viewed(cur, table, f.name, have[f.name], wanted)
                using = f" USING NULL::{wanted}" if empty else ""
                cur.execute(f"ALTER TABLE {target} ALTER COLUMN {_ident(f.name)} TYPE {wanted}{using}")

    def _refuse_if_viewed(self, cur: Any, table: str, column: str, old: str, new: str) -> None:
        """PostgreSQL cannot change the type of a column a view reads: name the views and what to do."""
        cur.execute(
            "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "JOIN pg_class v ON v.oid = r.ev_class JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
            "WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = to_regclass($1) AND a.attname = $2 "
            "AND v.oid <> d.refobjid ORDER BY 1",
            [self._target(table), column])
        views = [r[0] for r in cur.fetchall()]
        if views:
            raise WarehouseError(
                f"warehouse: column {column!r} of {self.schema}.{table} changes from {old} to {new}, but view(s) "
                f"{', '.join(views)} read it and PostgreSQL cannot change a column under a view; nothing was loaded. "
                f"Drop the view(s), run `replicator sync {table}` again (it loads the pending batch), then recreate them"
            )

    def _follow_key(self, cur: Any, spec: LoadSpec) -> None:
        """A full batch may bring a new primary key (the YAML's changed): the emptied table takes it."""
        cur.execute("SELECT c.conname, array_agg(a.attname::text ORDER BY k.ord) FROM pg_constraint c "
                    "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
                    "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
                    "WHERE c.conrelid = to_regclass($1) AND c.contype = 'p' GROUP BY c.conname",
                    [self._target(spec.name)])
        row = cur.fetchone()
        if row is not None and list(row[1]) == list(spec.primary_key):
            return
        target = self._target(spec.name)
        if row is not None:
            cur.execute(f"ALTER TABLE {target} DROP CONSTRAINT {_ident(row[0])}")
        cur.execute(f"ALTER TABLE {target} ADD PRIMARY KEY ({', '.join(_ident(k) for k in spec.primary_key)})")

    def _copy(self, cur: Any, data: pa.Table | ds.Dataset, table: str, schema: str | None) -> _Stream:
        """Binary COPY of the batch into `table` (the temporary stage when `schema` is None), batch by batch."""
        stream = _Stream(data)
        where: dict[str, Any] = {"temporary": True} if schema is None else {"db_schema_name": schema}
        stream.rows = int(cur.adbc_ingest(table, stream.reader(), mode="append", **where))
        return stream

    def close(self) -> None:
        return None
