"""PostgreSQL warehouse: COPY into a temporary stage, then one merge and the ledger row, one transaction."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.dataset as ds
from psycopg2 import sql

from ..errors import WarehouseError, WarehouseUnavailable, mask_secrets
from ..types import LOGICAL_KEY
from .base import LEDGER_TABLE, LoadSpec

__all__ = ["PostgresWarehouse", "pg_type"]


def pg_type(field: pa.Field) -> str:
    """The PostgreSQL column type that keeps every value of an Arrow field."""
    t = field.type
    logical = (field.metadata or {}).get(LOGICAL_KEY, b"").decode()
    if logical == "json":
        return "jsonb"
    if logical == "uuid":
        return "uuid"
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


def _copy_text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, list):
        return _escape(_array_literal(value))
    if isinstance(value, dict):
        return _escape(json.dumps(value))
    if isinstance(value, dt.timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    return _escape(str(value))


def _copy_values(column: pa.Array) -> list[Any]:
    """A column's values for COPY; dates and timestamps as text computed from their integers.

    PostgreSQL holds dates from 4714 BC to 5874897 AD, Python's datetime only years 1-9999, and Arrow's
    own string cast misprints years beyond about 32767 (a timestamp in year 200000 became 3392).
    """
    if pa.types.is_date32(column.type):
        return [None if v is None else _date_text(v) for v in column.cast(pa.int32()).to_pylist()]
    if pa.types.is_timestamp(column.type):
        zone = "+00" if column.type.tz else ""
        return [None if v is None else _timestamp_text(v, zone) for v in column.cast(pa.int64()).to_pylist()]
    return column.to_pylist()


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01, proleptic Gregorian, astronomical years
    (year 0 is 1 BC): Howard Hinnant's civil_from_days, exact for any integer."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _date_text(days: int, time: str = "", zone: str = "") -> str:
    year, month, day = _civil(days)
    era = "" if year > 0 else " BC"  # PostgreSQL counts 1 BC, 2 BC, ... where astronomy has 0, -1, ...
    return f"{year if year > 0 else 1 - year:04d}-{month:02d}-{day:02d}{time}{zone}{era}"


def _timestamp_text(micros: int, zone: str) -> str:
    days, rest = divmod(micros, 86_400_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    return _date_text(days, f" {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}", zone)


def _array_literal(items: list[Any]) -> str:
    parts = []
    for item in items:
        if item is None:
            parts.append("NULL")
        elif isinstance(item, list):
            parts.append(_array_literal(item))
        elif isinstance(item, (bytes, bytearray)):
            parts.append('"\\\\x' + bytes(item).hex() + '"')
        else:
            text = ("t" if item else "f") if isinstance(item, bool) else str(item)
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


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
        except psycopg2.OperationalError as exc:
            first = mask_secrets(str(exc).strip().splitlines()[0])
            cls = WarehouseError if "authentication" in first or "does not exist" in first else WarehouseUnavailable
            raise cls(f"warehouse: cannot connect: {first}") from exc
        try:
            yield con
        except psycopg2.Error as exc:
            con.rollback()
            raise WarehouseError(f"warehouse: {mask_secrets(str(exc).strip().splitlines()[0])}") from exc
        finally:
            con.close()

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

    def load_batch(self, spec: LoadSpec, seq: int, full: bool, data: pa.Table | ds.Dataset) -> int:
        target = self._qualified(spec.name)
        key = [sql.Identifier(k) for k in spec.primary_key]
        if "_deleted" not in data.schema.names:  # a batch written before the lake had deletion markers
            raise WarehouseError(f"warehouse: batch {seq} of {spec.name!r} predates deletion markers; resync with --full-refresh")
        cols = [sql.Identifier(f.name) for f in data.schema]
        with self._connect() as con, con.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            cur.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, last_loaded_seq bigint NOT NULL, "
                "loaded_at timestamptz NOT NULL)").format(self._qualified(LEDGER_TABLE)))
            defs = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f))) for f in data.schema)
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(target, defs, sql.SQL(", ").join(key)))
            if full:
                # Emptied first, so the schema below follows the batch without converting a single value.
                cur.execute(sql.SQL("DELETE FROM {}").format(target))
            self._follow_schema(cur, spec.name, data.schema, empty=full)
            if full:
                self._follow_key(cur, spec)
            cur.execute(sql.SQL("CREATE TEMP TABLE replicator_stage ({}) ON COMMIT DROP").format(defs))
            self._copy(cur, data, cols)
            order = sql.SQL("_batch_id DESC") if not spec.watermark else sql.SQL("_batch_id DESC, {} DESC NULLS LAST").format(sql.Identifier(spec.watermark))
            key_list = sql.SQL(", ").join(key)
            if not full:
                match = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=k) for k in key)
                cur.execute(sql.SQL("DELETE FROM {} AS t USING replicator_stage AS s WHERE {} AND t._batch_id <= s._batch_id").format(target, match))
            col_list = sql.SQL(", ").join(cols)
            # The newest version per key; a deleted key's marker removes its row and is not inserted.
            cur.execute(sql.SQL(
                "INSERT INTO {t} ({cols}) SELECT {cols} FROM (SELECT DISTINCT ON ({key}) {cols} FROM replicator_stage "
                "ORDER BY {key}, {order}) AS latest WHERE NOT _deleted "
                "ON CONFLICT ({key}) DO NOTHING").format(t=target, cols=col_list, key=key_list, order=order))
            merged = cur.rowcount
            cur.execute(sql.SQL(
                "INSERT INTO {} VALUES (%s, %s, now()) ON CONFLICT (table_name) DO UPDATE "
                "SET last_loaded_seq = EXCLUDED.last_loaded_seq, loaded_at = EXCLUDED.loaded_at").format(self._qualified(LEDGER_TABLE)), [spec.name, seq])
            con.commit()
            return merged

    def _follow_schema(self, cur: Any, table: str, schema: pa.Schema, empty: bool) -> None:
        """Add new columns and change the type of changed ones, as the lake's schema evolved.

        An incremental batch only brings widened types, so existing rows convert. A full batch replaces
        every row and the table was emptied first: any type change applies without converting a value
        (`USING NULL`), so `--full-refresh` after an incompatible change (text -> int) keeps the table,
        its grants and the views on its other columns. A view on a changed column blocks the change.
        """
        cur.execute("SELECT column_name, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c "
                    "JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(c.table_schema) || '.' || quote_ident(c.table_name)) "
                    "AND a.attname = c.column_name WHERE c.table_schema = %s AND c.table_name = %s", [self.schema, table])
        have = dict(cur.fetchall())
        target = self._qualified(table)
        for f in schema:
            wanted = pg_type(f)
            if f.name not in have:
                cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(target, sql.Identifier(f.name), sql.SQL(wanted)))
            elif have[f.name] != _canonical(wanted):
                self._refuse_if_viewed(cur, table, f.name, have[f.name], wanted)
                using = sql.SQL(" USING NULL::{}").format(sql.SQL(wanted)) if empty else sql.SQL("")
                cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}{}").format(
                    target, sql.Identifier(f.name), sql.SQL(wanted), using))

    def _refuse_if_viewed(self, cur: Any, table: str, column: str, old: str, new: str) -> None:
        """PostgreSQL cannot change the type of a column a view reads: name the views and what to do."""
        cur.execute(
            "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "JOIN pg_class v ON v.oid = r.ev_class JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
            "WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = to_regclass(%s) AND a.attname = %s "
            "AND v.oid <> d.refobjid ORDER BY 1",
            [self._qualified(table).as_string(cur), column])
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
                    "WHERE c.conrelid = to_regclass(%s) AND c.contype = 'p' GROUP BY c.conname",
                    [self._qualified(spec.name).as_string(cur)])
        row = cur.fetchone()
        if row is not None and list(row[1]) == list(spec.primary_key):
            return
        target = self._qualified(spec.name)
        if row is not None:
            cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(row[0])))
        cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
            target, sql.SQL(", ").join(sql.Identifier(k) for k in spec.primary_key)))

    def _copy(self, cur: Any, data: pa.Table | ds.Dataset, cols: list[sql.Identifier]) -> None:
        copy = sql.SQL("COPY replicator_stage ({}) FROM STDIN").format(sql.SQL(", ").join(cols)).as_string(cur)
        batches = data.to_batches(batch_size=50_000) if isinstance(data, ds.Dataset) else data.to_batches(max_chunksize=50_000)
        for batch in batches:
            buf = io.StringIO()
            columns = [_copy_values(c) for c in batch.columns]
            for row in zip(*columns):
                buf.write("\t".join(_copy_text(v) for v in row))
                buf.write("\n")
            buf.seek(0)
            cur.copy_expert(copy, buf)

    def close(self) -> None:
        return None
