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
