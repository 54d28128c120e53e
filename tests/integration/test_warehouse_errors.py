"""The PostgreSQL warehouse's ADBC errors (its binary COPY path) are classified by their SQLSTATE, not their class.

ADBC raises a lock conflict (55P03) as ProgrammingError: by class it would look permanent, by SQLSTATE it is
a conflict a retry resolves.
"""

from __future__ import annotations

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc_pg
import pytest

from replicator.errors import WarehouseError, WarehouseUnavailable
from replicator.warehouse.errors import postgres_class


def test_a_lock_conflict_is_retriable_and_a_missing_table_is_not(pg_url: str) -> None:
    uri = pg_url.replace("postgresql+psycopg2://", "postgresql://")
    with adbc_pg.connect(uri) as holder, adbc_pg.connect(uri) as loader:
        with holder.cursor() as cur:
            cur.execute("CREATE TABLE rides (id int PRIMARY KEY)")
            cur.execute("INSERT INTO rides VALUES (1)")
            holder.commit()
            cur.execute("SELECT * FROM rides FOR UPDATE")
            cur.fetchall()
        with loader.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as locked:
            cur.execute("SELECT * FROM rides FOR UPDATE NOWAIT")
            cur.fetchall()
        loader.rollback()
        with loader.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as missing:
            cur.execute("SELECT * FROM no_such_table")
            cur.fetchall()
        holder.rollback()
    assert locked.value.sqlstate == "55P03" and isinstance(locked.value, adbc_driver_manager.ProgrammingError)
    assert postgres_class(locked.value, "use") is WarehouseUnavailable and WarehouseUnavailable.retriable
    assert missing.value.sqlstate == "42P01"
    assert postgres_class(missing.value, "use") is WarehouseError and not WarehouseError.retriable
