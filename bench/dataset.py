"""The ride tables, generated server-side in database `replicator_bench` on PostgreSQL and MariaDB.

Rows are a deterministic function of the id, so both dialects hold the same data (up to the type map):
`updated_at` is spread over the 30 days before generation, `created_at` is up to two hours before it,
one note in five is NULL and two in five carry non-ASCII text, `metadata` is a small JSON object.
A marker table `bench_meta` records each generated table's row count, so a later run with the same
`--rows` reuses the table instead of generating it again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
import pymysql

__all__ = ["DATABASE", "DIALECTS", "Server", "ensure_table", "server", "touch_two_percent"]

DATABASE = "replicator_bench"
DIALECTS = ("postgresql", "mariadb")
GENERATOR_VERSION = "1"
_CHUNK = 1_000_000  # rows per INSERT ... SELECT, so 20M rows never sit in one transaction

_PG_COLUMNS = """
    id bigint NOT NULL, city_id int, driver_id bigint, rider_id bigint, status text, price numeric(12,2),
    distance_km double precision, created_at timestamptz, updated_at timestamptz, pickup_lat double precision,
    pickup_lon double precision, notes text, is_paid boolean, metadata jsonb
"""
_MARIADB_COLUMNS = """
    id BIGINT NOT NULL PRIMARY KEY, city_id INT, driver_id BIGINT, rider_id BIGINT, status TEXT, price DECIMAL(12,2),
    distance_km DOUBLE, created_at DATETIME(6), updated_at DATETIME(6), pickup_lat DOUBLE, pickup_lon DOUBLE,
    notes TEXT, is_paid BOOLEAN, metadata JSON
"""

# One SELECT per dialect computing every column from the id `g` and the row's updated_at `u`; the chunk's
# bounds are formatted in (integers), so the drivers see no parameters and `%` stays SQL's modulo.
_PG_SELECT = """
SELECT g, 1 + (g * 7919) % 60, 1 + (g * 104729) % 50000, 1 + (g * 15485863) % 1000000,
       (ARRAY['completed','completed','completed','completed','completed','completed',
              'cancelled','requested','in_progress','no_show'])[1 + (g * 31) % 10],
       round(3 + ((g * 2654435761) % 9000000) / 100000.0, 2),
       0.5 + ((g * 40503) % 3000000) / 100000.0,
       u - ((g * 97) % 7200) * interval '1 second', u,
       40.5 + ((g * 7) % 100000) / 200000.0, -74.2 + ((g * 13) % 100000) / 250000.0,
       CASE g % 5 WHEN 0 THEN NULL
                  WHEN 1 THEN 'Fahrer pünktlich, café au lait ☕ #' || g
                  WHEN 2 THEN '乗車ありがとう 🚕 ' || g
                  ELSE 'pickup at gate ' || (g % 97) END,
       (g * 31) % 10 <> 6,
       jsonb_build_object('app', (ARRAY['ios','android','web'])[1 + g % 3], 'v', g % 7,
                          'surge', (g % 4) * 0.25, 'promo', g % 11 = 0)
FROM (SELECT g, now() - ((g * 2654435761) % 2592000000000) * interval '1 microsecond' AS u
      FROM generate_series({lo}::bigint, {hi}::bigint) AS g) AS s
"""
_MARIADB_SELECT = """
SELECT g, 1 + (g * 7919) % 60, 1 + (g * 104729) % 50000, 1 + (g * 15485863) % 1000000,
       ELT(1 + (g * 31) % 10, 'completed','completed','completed','completed','completed','completed',
           'cancelled','requested','in_progress','no_show'),
       ROUND(3 + ((g * 2654435761) % 9000000) / 100000, 2),
       0.5 + ((g * 40503) % 3000000) / 100000e0,
       u - INTERVAL ((g * 97) % 7200) SECOND, u,
       40.5 + ((g * 7) % 100000) / 200000e0, -74.2 + ((g * 13) % 100000) / 250000e0,
       CASE g % 5 WHEN 0 THEN NULL
                  WHEN 1 THEN CONCAT('Fahrer pünktlich, café au lait ☕ #', g)
                  WHEN 2 THEN CONCAT('乗車ありがとう 🚕 ', g)
                  ELSE CONCAT('pickup at gate ', g % 97) END,
       (g * 31) % 10 <> 6,
       JSON_OBJECT('app', ELT(1 + g % 3, 'ios','android','web'), 'v', g % 7,
                   'surge', (g % 4) * 0.25, 'promo', g % 11 = 0)
FROM (SELECT seq AS g, UTC_TIMESTAMP(6) - INTERVAL ((seq * 2654435761) % 2592000000000) MICROSECOND AS u
      FROM seq_{lo}_to_{hi}) AS s
"""


@dataclass(frozen=True)
class Server:
    """How to reach one dialect's server: admin connection, the bench database, replicator's source URL."""

    dialect: str
    host: str
    port: int
    user: str

    def source_url(self) -> str:
        if self.dialect == "postgresql":
            return f"postgresql://{self.user}@{self.host}:{self.port}/{DATABASE}"
        return f"mysql+pymysql://{self.user}@{self.host}:{self.port}/{DATABASE}?charset=utf8mb4"

    def source_table(self, table: str) -> str:
        return f"public.{table}" if self.dialect == "postgresql" else table

    @contextmanager
    def connect(self, database: str | None = DATABASE) -> Iterator[Any]:
        """A DB-API connection in autocommit mode."""
        if self.dialect == "postgresql":
            conn: Any = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                         dbname=database or "postgres")
            conn.autocommit = True
        else:
            conn = pymysql.connect(host=self.host, port=self.port, user=self.user, database=database,
                                   charset="utf8mb4", autocommit=True)
        try:
            yield conn
        finally:
            conn.close()

    def version(self) -> str:
        """Server version and the cache size that decides how much of the table is read from memory."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT version()")
            version = str(cur.fetchone()[0]).split(" on ")[0]
            if self.dialect == "postgresql":
                cur.execute("SELECT current_setting('shared_buffers')")
                return f"{version}, shared_buffers {cur.fetchone()[0]}"
            cur.execute("SELECT @@innodb_buffer_pool_size DIV 1048576, @@innodb_flush_method")
            pool, flush = cur.fetchone()
            return f"{version}, innodb_buffer_pool_size {pool} MiB, innodb_flush_method {flush}"

    def disk_reads(self) -> int | None:
        """Bytes InnoDB has read from its data files since start (MariaDB); None for PostgreSQL.

        With O_DIRECT these are disk reads: what a step's rows cost the server beyond its buffer pool.
        PostgreSQL reads through the OS page cache, where no counter tells a disk read from a cached one.
        """
        if self.dialect != "mariadb":
            return None
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_data_read'")
            return int(cur.fetchone()[1])


def server(dialect: str) -> Server:
    if dialect == "postgresql":
        return Server(dialect, os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
                      int(os.environ.get("BENCH_PG_PORT", "5432")), os.environ.get("BENCH_PG_USER", "postgres"))
    if dialect == "mariadb":
        return Server(dialect, os.environ.get("BENCH_MARIADB_HOST", "127.0.0.1"),
                      int(os.environ.get("BENCH_MARIADB_PORT", "3306")), os.environ.get("BENCH_MARIADB_USER", "root"))
    raise ValueError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")


def _ident(dialect: str, name: str) -> str:
    """A quoted table name; the bench only ever uses plain lower-case names, so anything else is refused."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"table {name!r}: the bench uses plain lower-case names only")
    return f'"{name}"' if dialect == "postgresql" else f"`{name}`"


def _create_database(srv: Server) -> None:
    with srv.connect(None) as conn, conn.cursor() as cur:
        if srv.dialect == "postgresql":
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
        else:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")


def _meta_rows(cur: Any, srv: Server, table: str) -> int | None:
    """Rows recorded for `table` by a completed generation of this generator version, else None."""
    if srv.dialect == "postgresql":
        cur.execute("CREATE TABLE IF NOT EXISTS bench_meta (table_name text PRIMARY KEY, row_count bigint NOT NULL,"
                    " generator text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
    else:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_meta (table_name VARCHAR(64) PRIMARY KEY, row_count BIGINT NOT NULL,"
                    " generator VARCHAR(16) NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6))")
    cur.execute("SELECT row_count, generator FROM bench_meta WHERE table_name = %s", (table,))
    row = cur.fetchone()
    return int(row[0]) if row is not None and row[1] == GENERATOR_VERSION else None


def ensure_table(dialect: str, table: str, rows: int, log: Callable[[str], None] = print) -> float:
    """Create `table` with `rows` rows unless bench_meta says it exists with that count; returns seconds spent."""
    srv = server(dialect)
    started = time.perf_counter()
    _create_database(srv)
    with srv.connect() as conn, conn.cursor() as cur:
        if _meta_rows(cur, srv, table) == rows:
            log(f"{dialect}: reusing {DATABASE}.{table} ({rows:,} rows)")
            return 0.0
        log(f"{dialect}: generating {DATABASE}.{table} with {rows:,} rows ...")
        cur.execute("DELETE FROM bench_meta WHERE table_name = %s", (table,))
        if dialect == "postgresql":
            _generate_postgres(cur, table, rows)
        else:
            _generate_mariadb(cur, table, rows)
        cur.execute("INSERT INTO bench_meta (table_name, row_count, generator) VALUES (%s, %s, %s)",
                    (table, rows, GENERATOR_VERSION))
    took = time.perf_counter() - started
    log(f"{dialect}: generated {table} in {took:.1f} s")
    return took


def _chunks(rows: int) -> Iterator[tuple[int, int]]:
    for lo in range(1, rows + 1, _CHUNK):
        yield lo, min(lo + _CHUNK - 1, rows)


def _generate_postgres(cur: Any, table: str, rows: int) -> None:
    name = _ident("postgresql", table)
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    cur.execute(f"CREATE TABLE {name} ({_PG_COLUMNS})")
    cur.execute("SET synchronous_commit = off")
    for lo, hi in _chunks(rows):
        cur.execute(f"INSERT INTO {name} {_PG_SELECT.format(lo=lo, hi=hi)}")
    cur.execute("SET maintenance_work_mem = '512MB'")
    cur.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
    cur.execute(f"CREATE INDEX {_ident('postgresql', table + '_updated_at')} ON {name} (updated_at)")
    # Freeze and analyze now, so no measured read pays for setting hint bits on fresh tuples.
    cur.execute(f"VACUUM (FREEZE, ANALYZE) {name}")


def _generate_mariadb(cur: Any, table: str, rows: int) -> None:
    name = _ident("mariadb", table)
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    cur.execute(f"CREATE TABLE {name} ({_MARIADB_COLUMNS}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    cur.execute("SET SESSION unique_checks = 0")
    for lo, hi in _chunks(rows):
        cur.execute("START TRANSACTION")
        cur.execute(f"INSERT INTO {name} {_MARIADB_SELECT.format(lo=lo, hi=hi)}")
        cur.execute("COMMIT")
    cur.execute(f"CREATE INDEX {_ident('mariadb', table + '_updated_at')} ON {name} (updated_at)")
    cur.execute(f"ANALYZE TABLE {name}")
    cur.fetchall()


def touch_two_percent(dialect: str, table: str) -> tuple[int, str]:
    """Mark 2% of the rides completed now (the change an incremental sync has to pick up).

    Returns the rows changed and their new updated_at (ISO), the lower bound of the incremental floor's read.
    """
    srv = server(dialect)
    now = "now()" if dialect == "postgresql" else "UTC_TIMESTAMP(6)"
    name = _ident(dialect, table)
    update = f"UPDATE {name} SET updated_at = {now}, status = 'completed' WHERE id % 50 = 0"  # noqa: S608
    with srv.connect() as conn, conn.cursor() as cur:
        cur.execute(update)
        rows = int(cur.rowcount)
        cur.execute(f"SELECT max(updated_at) FROM {name}")  # noqa: S608 - quoted name; an index-only read
        changed_at = cur.fetchone()[0]
    return rows, changed_at.isoformat(sep=" ")
