"""An independent oracle: judges the lake and the warehouse from their files and tables alone.

Nothing here imports `replicator`. The lake is read the way any Hive-aware reader of the documented
layout reads it (DuckDB over the folders for a local lake; pyarrow's dataset over its S3FileSystem for
an S3 lake), the source and the warehouse with plain driver queries, and the README's rules are
written out again as SQL:

- visible row versions: the Parquet files `<lake>/<name>/<folder>/<file>.parquet` whose folder and
  file name do not start with `_` or `.`, read with their union of columns;
- current state: per primary key, the version of the highest `_batch_id`, then the highest watermark;
  dropped when that version has `_deleted` true. Two different versions tied at the top make the state
  undefined, and `lake_current` says so instead of picking one;
- the warehouse holds the current state: `count(*) = count(DISTINCT key)`, and its rows equal the source's
  column by column;
- the source's current state: every row, less those whose `soft_delete` column is set (true for a
  boolean, not NULL otherwise).

Values are compared after `canonical`: timestamps as naive UTC, decimals by value, bytes as bytes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

PARTITION = "dt"
LAKE_COLUMNS = ("_batch_id", "_loaded_at", "_deleted")
HIDDEN = ("_", ".")
SAMPLE = 8  # keys shown per kind of difference


def quote(name: str) -> str:
    """A DuckDB / PostgreSQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _quote_mysql(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# -- the lake ------------------------------------------------------------------------------------------

def _visible(relative: str) -> bool:
    """<folder>/<file>.parquet with neither part hidden: what the Hive layout shows a reader."""
    parts = relative.split("/")
    return len(parts) == 2 and parts[1].endswith(".parquet") and not any(p.startswith(HIDDEN) for p in parts)


def _local_root(lake_url: str) -> Path | None:
    parsed = urlparse(lake_url)
    if parsed.scheme == "s3":
        return None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(lake_url)


def _s3() -> pafs.S3FileSystem:
    """pyarrow's own S3 client, configured from the standard AWS environment."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc + parsed.path.rstrip("/"), scheme=parsed.scheme or "https")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        options.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    return pafs.S3FileSystem(**options)


def lake_files(lake_url: str, name: str) -> list[str]:
    """The table's visible Parquet files (local paths, or bucket/key for S3), sorted."""
    root = _local_root(lake_url)
    if root is not None:
        base = root / name
        return sorted(str(p) for p in base.glob("*/*.parquet") if _visible(p.relative_to(base).as_posix()))
    parsed = urlparse(lake_url)
    base = "/".join(p for p in (parsed.netloc, parsed.path.strip("/"), name) if p)
    infos = _s3().get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and _visible(i.path[len(base) + 1:]))


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _register_versions(con: duckdb.DuckDBPyConnection, lake_url: str, name: str) -> bool:
    """Make `lake_rows` the table's visible row versions; False when it has no visible file."""
    files = lake_files(lake_url, name)
    if not files:
        return False
    if _local_root(lake_url) is not None:
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        plain = f"read_parquet({listed}, union_by_name = true)"
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {plain}").fetchall()]
        # A source column named like the partition folder keeps its own values.
        hive = "false" if PARTITION in columns else "true"
        con.execute(f"CREATE VIEW lake_rows AS SELECT * FROM read_parquet({listed}, hive_partitioning = {hive}, "
                    "hive_types_autocast = false, union_by_name = true)")
        return True
    fs = _s3()
    schema = pa.unify_schemas([pq.read_schema(f, filesystem=fs) for f in files], promote_options="permissive")
    partitioning = None
    if PARTITION not in schema.names:
        partitioning = ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive")
        schema = schema.append(pa.field(PARTITION, pa.string()))
    parsed = urlparse(lake_url)
    base = "/".join(p for p in (parsed.netloc, parsed.path.strip("/"), name) if p)
    data = ds.dataset(files, schema=schema, filesystem=fs, format="parquet", partitioning=partitioning,
                      partition_base_dir=base).to_table()
    con.register("lake_rows", data)
    return True


def lake_versions(lake_url: str, name: str) -> pa.Table:
    """Every visible row version of the table (with `_batch_id`, `_loaded_at`, `_deleted` and `dt`)."""
    con = _connect()
    try:
        if not _register_versions(con, lake_url, name):
            return pa.table({})
        return con.sql("SELECT * FROM lake_rows").to_arrow_table()
    finally:
        con.close()


def _ranked(key: Sequence[str], watermark: str | None, as_of: int | None) -> str:
    order = ["_batch_id DESC"] + ([f"{quote(watermark)} DESC NULLS LAST"] if watermark else [])
    where = "" if as_of is None else f" WHERE _batch_id <= {int(as_of)}"
    return (f"SELECT *, rank() OVER (PARTITION BY {', '.join(quote(k) for k in key)} "
            f"ORDER BY {', '.join(order)}) AS _oracle_rank FROM lake_rows{where}")


def lake_current(lake_url: str, name: str, key: Sequence[str], watermark: str | None,
                 as_of: int | None = None) -> pa.Table:
    """The current state by the README's rule, from the visible files alone.

    With `as_of`, the state after that batch: only valid while no later full batch or compaction has
    retired that batch's files from the Hive layout. Raises AssertionError when a key's newest version
    is not unique (two different rows share its `_batch_id` and watermark).
    """
    con = _connect()
    try:
        if not _register_versions(con, lake_url, name):
            return pa.table({})
        keys = ", ".join(quote(k) for k in key)
        ranked = _ranked(key, watermark, as_of)
        ambiguous = con.execute(
            f"SELECT {keys}, count(*) AS n FROM (SELECT DISTINCT * EXCLUDE (_oracle_rank) FROM ({ranked}) "
            f"WHERE _oracle_rank = 1) GROUP BY {keys} HAVING count(*) > 1 ORDER BY {keys} LIMIT {SAMPLE}"
        ).fetchall()
        assert not ambiguous, (f"lake {name!r}: the newest version of these keys is not unique (same _batch_id "
                               f"and watermark, different rows): {ambiguous}")
        deleted = "_deleted" in [r[0] for r in con.execute("DESCRIBE lake_rows").fetchall()]
        alive = " AND NOT coalesce(_deleted, false)" if deleted else ""
        return con.sql(f"SELECT * EXCLUDE (_oracle_rank) FROM ({ranked}) WHERE _oracle_rank = 1{alive} "
                       f"ORDER BY {keys}").to_arrow_table()
    finally:
        con.close()


# -- the warehouse -------------------------------------------------------------------------------------

def pg_dsn(url: str) -> str:
    """A libpq URL from a SQLAlchemy-style one (postgresql+psycopg2://...)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def _warehouse_query(warehouse_url: str, sql: str) -> tuple[list[str], list[tuple]] | None:
    """(column names, rows), or None when the table does not exist (nothing loaded yet)."""
    if warehouse_url.startswith("duckdb"):
        path = warehouse_url.removeprefix("duckdb:///")
        if not os.path.exists(path):
            return None
        con = duckdb.connect(path, read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            try:
                cur = con.execute(sql)
            except duckdb.CatalogException:
                return None
            return [d[0] for d in cur.description], cur.fetchall()
        finally:
            con.close()
    import psycopg2
    import psycopg2.errors

    con = psycopg2.connect(pg_dsn(warehouse_url))
    try:
        with con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            try:
                cur.execute(sql)
            except psycopg2.errors.UndefinedTable:
                return None
            return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]
    finally:
        con.close()


def warehouse_rows(warehouse_url: str, schema: str, name: str,
                   columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The warehouse table's rows ([] when it does not exist yet)."""
    cols = ", ".join(quote(c) for c in columns) if columns else "*"
    got = _warehouse_query(warehouse_url, f"SELECT {cols} FROM {quote(schema)}.{quote(name)}")
    if got is None:
        return []
    names, rows = got
    return [dict(zip(names, r)) for r in rows]


def warehouse_key_counts(warehouse_url: str, schema: str, name: str, key: Sequence[str]) -> tuple[int, int]:
    """(count(*), count(DISTINCT key)) of the warehouse table; (0, 0) when it does not exist."""
    keys = ", ".join(quote(k) for k in key)
    distinct = f"count(DISTINCT ({keys}))" if len(key) > 1 else f"count(DISTINCT {keys})"
    got = _warehouse_query(warehouse_url, f"SELECT count(*), {distinct} FROM {quote(schema)}.{quote(name)}")
    if got is None:
        return 0, 0
    total, unique = got[1][0]
    return int(total), int(unique)


# -- the source ----------------------------------------------------------------------------------------

def _dialect(url: str) -> str:
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme.startswith("postgres"):
        return "postgresql"
    if scheme in ("mysql", "mariadb"):
        return "mariadb"
    raise ValueError(f"oracle: no plain driver for {scheme!r}")


def connect(url: str, *, autocommit: bool = True) -> Any:
    """A plain DB-API connection (psycopg2 or PyMySQL) to a source URL, its session clock in UTC."""
    if _dialect(url) == "postgresql":
        import psycopg2

        con = psycopg2.connect(pg_dsn(url))
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        con.autocommit = autocommit
        return con
    import pymysql

    parsed = urlparse(url)
    con = pymysql.connect(host=parsed.hostname or "127.0.0.1", port=parsed.port or 3306,
                          user=unquote(parsed.username or "root"), password=unquote(parsed.password or ""),
                          database=unquote(parsed.path.lstrip("/")) or None, charset="utf8mb4", autocommit=True)
    with con.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")  # TIMESTAMP values as UTC
    con.autocommit(autocommit)
    return con


def source_rows(source_url: str, table: str, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every row of `table` (dotted schema.table or db.table) by a plain driver query; timestamps in UTC."""
    q = quote if _dialect(source_url) == "postgresql" else _quote_mysql
    name = ".".join(q(p) for p in table.split("."))
    cols = ", ".join(q(c) for c in columns) if columns else "*"
    con = connect(source_url)
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT {cols} FROM {name}")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def is_set(value: Any) -> bool:
    """A soft-delete column marks its row deleted: true for a boolean, not NULL otherwise."""
    if isinstance(value, bool):
        return value
    return value is not None


# -- comparison ----------------------------------------------------------------------------------------

def canonical(value: Any) -> Any:
    """One form per value whatever driver or engine produced it."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, decimal.Decimal):
        return "NaN" if value.is_nan() else value.normalize() if value else decimal.Decimal(0)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):  # PyMySQL's TIME
        return (dt.datetime.min + value).time()
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    return value


def keyed(rows: Iterable[Mapping[str, Any]], key: Sequence[str], columns: Sequence[str]
          ) -> tuple[dict[tuple, dict[str, Any]], list[tuple]]:
    """key -> {column: canonical value}, and the keys met more than once."""
    out: dict[tuple, dict[str, Any]] = {}
    repeated = []
    for row in rows:
        k = tuple(canonical(row[c]) for c in key)
        if k in out:
            repeated.append(k)
        out[k] = {c: canonical(row[c]) for c in columns}
    return out, repeated


@dataclass
class Diff:
    """How `actual` differs from `expected`, both keyed by primary key."""

    where: str
    missing: list[tuple] = field(default_factory=list)
    extra: list[tuple] = field(default_factory=list)
    different: dict[tuple, list[tuple[str, Any, Any]]] = field(default_factory=dict)
    repeated: list[tuple] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.different or self.repeated)

    def __str__(self) -> str:
        lines = [f"{self.where} differs from the source:"]
        if self.missing:
            lines.append(f"  {len(self.missing)} keys missing: {sorted(self.missing, key=repr)[:SAMPLE]}")
        if self.extra:
            lines.append(f"  {len(self.extra)} extra keys: {sorted(self.extra, key=repr)[:SAMPLE]}")
        if self.repeated:
            lines.append(f"  {len(self.repeated)} keys more than once: {sorted(self.repeated, key=repr)[:SAMPLE]}")
        if self.different:
            lines.append(f"  {len(self.different)} keys with different values:")
            for k in sorted(self.different, key=repr)[:SAMPLE]:
                cells = "; ".join(f"{c}: source {s!r} != {got!r}" for c, s, got in self.different[k])
                lines.append(f"    {k}: {cells}")
        return "\n".join(lines)


def compare(expected: Mapping[tuple, Mapping[str, Any]], actual: Mapping[tuple, Mapping[str, Any]],
            where: str, repeated: Sequence[tuple] = ()) -> Diff:
    diff = Diff(where, repeated=list(repeated))
    diff.missing = [k for k in expected if k not in actual]
    diff.extra = [k for k in actual if k not in expected]
    for k, want in expected.items():
        got = actual.get(k)
        if got is None:
            continue
        cells = [(c, v, got[c]) for c, v in want.items() if got[c] != v or _kind(got[c]) != _kind(v)]
        if cells:
            diff.different[k] = cells
    return diff


def _kind(value: Any) -> str:
    """NULL against a value, a number against text: what `==` alone would let pass (0 == False, 1.0 == 1)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float, decimal.Decimal)):
        return "number"
    return type(value).__name__


def expected_state(source_url: str, table: str, key: Sequence[str], columns: Sequence[str] | None = None,
                   soft_delete: str | None = None) -> tuple[dict[tuple, dict[str, Any]], list[str]]:
    """The source's current state keyed by primary key, and the compared columns."""
    rows = source_rows(source_url, table)
    names = list(columns) if columns else (list(rows[0]) if rows else [])
    if soft_delete:
        rows = [r for r in rows if not is_set(r[soft_delete])]
    state, repeated = keyed(rows, key, names)
    assert not repeated, f"source {table!r}: primary key values repeat: {repeated[:SAMPLE]}"
    return state, names


@dataclass
class Report:
    """The lake's current state and the warehouse against the source."""

    lake: Diff
    warehouse: Diff
    warehouse_rows: int
    warehouse_keys: int

    @property
    def lost(self) -> int:
        """Source rows the lake or the warehouse does not hold as they are."""
        return len({*self.lake.missing, *self.lake.different, *self.warehouse.missing, *self.warehouse.different})

    @property
    def duplicates(self) -> int:
        return len(self.lake.repeated) + self.warehouse_rows - self.warehouse_keys

    def problems(self) -> list[str]:
        found = [str(d) for d in (self.lake, self.warehouse) if d]
        if self.warehouse_rows != self.warehouse_keys:
            found.append(f"{self.warehouse.where}: count(*) {self.warehouse_rows} != count(DISTINCT key) "
                         f"{self.warehouse_keys}")
        return found


def replica_report(*, source_url: str, source_table: str, lake_url: str, warehouse_url: str, name: str,
                   key: Sequence[str], watermark: str | None, columns: Sequence[str] | None = None,
                   soft_delete: str | None = None, warehouse_schema: str = "raw") -> Report:
    """Compare the source's current state with the lake's and with the warehouse table, column by column."""
    expected, names = expected_state(source_url, source_table, key, columns, soft_delete)
    lake = lake_current(lake_url, name, key, watermark)
    lake_state, lake_repeats = keyed(lake.to_pylist() if lake.num_rows else [], key, names)
    total, unique = warehouse_key_counts(warehouse_url, warehouse_schema, name, key)
    wh_state, wh_repeats = keyed(warehouse_rows(warehouse_url, warehouse_schema, name, names) if names else [],
                                 key, names)
    return Report(compare(expected, lake_state, f"lake {name!r} current state", lake_repeats),
                  compare(expected, wh_state, f"warehouse {warehouse_schema}.{name}", wh_repeats), total, unique)


def assert_replica_equals_source(**kwargs: Any) -> None:
    """Lake current state and warehouse equal the source, key for key and column for column."""
    problems = replica_report(**kwargs).problems()
    assert not problems, "\n".join(problems)
