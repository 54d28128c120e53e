"""A scratch database on the local PostgreSQL server for the bench scripts run as `python bench/<script>.py`."""

from __future__ import annotations

import os

import sqlalchemy as sa

ADMIN = os.environ.get("REPLICATOR_BENCH_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def url(database: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + database


def fresh_database(database: str) -> sa.Engine:
    """Drop and create `database` (a fixed bench name, never user input); an engine on it."""
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return sa.create_engine(url(database))


def bench_rides(database: str, rows: int) -> None:
    """A fresh `database` with the bench's `rides`: `rows` rows over 30 day partitions of `created_at`."""
    _fresh_table(
        database, rows,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int NOT NULL, driver_id bigint, status text,"
        " price numeric(12,2), distance_km double precision, created_at timestamptz NOT NULL,"
        " updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, g % 50, g % 100000, (ARRAY['requested','completed','cancelled'])[g % 3 + 1],"
        " (g % 10000) / 100.0, (g % 3000) / 100.0, timestamptz '2026-11-01' + (g % 30) * interval '1 day',"
        " now() - interval '2 hours' FROM generate_series(1, :n) g",
        "ANALYZE rides")


def small_rides(database: str, rows: int) -> None:
    """A fresh `database` with `rides`: `rows` rows over 14 day partitions of `created_at`, indexed `updated_at`."""
    _fresh_table(
        database, rows,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int NOT NULL, status text, price numeric(12,2),"
        " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
        "INSERT INTO rides SELECT g, g % 50, 'requested', (g % 10000) / 100.0,"
        " timestamptz '2026-11-01' + (g % 14) * interval '1 day', now() - interval '2 hours'"
        " FROM generate_series(1, :n) g",
        "CREATE INDEX ON rides (updated_at)")


def _fresh_table(database: str, rows: int, create: str, insert: str, finish: str) -> None:
    """A fresh `database` where `create` makes the table, `insert` fills it with `rows` rows (`:n`), then `finish`."""
    engine = fresh_database(database)
    with engine.begin() as conn:
        conn.execute(sa.text(create))
        conn.execute(sa.text(insert), {"n": rows})
        conn.execute(sa.text(finish))
    engine.dispose()


def change_small_rides(database: str, batch: int) -> None:
    """About one row in 1,000 of `rides` changes (a different one each batch), stamped a minute ago."""
    engine = sa.create_engine(url(database))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rides SET status = 'completed', updated_at = now() - interval '1 minute'"
                             " WHERE id % 1000 = :k"), {"k": batch % 1000})
    engine.dispose()
