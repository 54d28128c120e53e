"""The current-state cases of tests/unit/test_current_state.py, run by real DuckDB and real PostgreSQL.

Each case runs twice per engine: the rule's SQL over a table of the case's rows, and the warehouse's own
load of those rows as one incremental batch into an empty table (what the loaders do with the rule).
The expected states are the hand-written ones of the unit cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import duckdb
import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pytest

from replicator.duckdb_sql import ident, to_arrow
from replicator.warehouse import LoadSpec
from replicator.warehouse.duckdb import DuckDBWarehouse
from replicator.warehouse.postgres import PostgresWarehouse

from ..conftest import pg_database
from ..unit.test_current_state import CASES, Case, state

pytestmark = pytest.mark.integration

RELATION = "case rows"
PG_TYPES = {pa.int64(): "bigint", pa.string(): "text", pa.bool_(): "boolean"}
IDS = [c.id for c in CASES]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """One database for the module (dropped after it), as a libpq URL."""
    with pg_database("cs") as url:
        yield url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _pg_rows(dsn: str, sql: str) -> list[tuple]:
    with closing(psycopg2.connect(dsn)) as con, con.cursor() as cur:
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]


def _table_name(case: Case) -> str:
    return f"State: {case.id}"  # spaces, a colon, mixed case


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_duckdb_sql(case: Case) -> None:
    data = case.table()
    rule = case.rule
    select_list = ", ".join([*(ident(c) for c in data.column_names), *rule.default_columns_sql(data.column_names, ident)])
    with duckdb.connect() as con:
        con.register(RELATION, data)
        latest = rule.duckdb_latest_sql(ident(RELATION), select_list, ident)
        result = to_arrow(con, f"SELECT * FROM ({latest}) AS latest WHERE {rule.live_sql(ident)}")
    assert state(result, case.output) == case.expected


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_postgres_sql(case: Case, pg_dsn: str) -> None:
    data = case.table()
    rule = case.rule
    with closing(psycopg2.connect(pg_dsn)) as con, con.cursor() as cur:
        def quote(name: str) -> str:
            return psycopg2.extensions.quote_ident(name, cur)

        cur.execute(f"CREATE TEMP TABLE {quote(RELATION)} ("
                    + ", ".join(f"{quote(f.name)} {PG_TYPES[f.type]}" for f in data.schema) + ")")
        cur.executemany(f"INSERT INTO {quote(RELATION)} VALUES ({', '.join(['%s'] * data.num_columns)})",
                        [tuple(r.values()) for r in data.to_pylist()])
        select_list = ", ".join([*(quote(c) for c in data.column_names), *rule.default_columns_sql(data.column_names, quote)])
        latest = rule.postgres_latest_sql(quote(RELATION), select_list, quote)
        cur.execute(f"SELECT {', '.join(quote(c) for c in case.output)} FROM ({latest}) AS latest "
                    f"WHERE {rule.live_sql(quote)}")
        rows = cur.fetchall()
        con.rollback()
    assert frozenset(rows) == case.expected
    assert len(rows) == len(case.expected)


def _spec(case: Case) -> LoadSpec:
    return LoadSpec(_table_name(case), case.rule.key, case.rule.watermark)


@pytest.mark.parametrize("case", [c for c in CASES if c.rule.fallback is None], ids=lambda c: c.id)
def test_duckdb_warehouse_loads_the_current_state(case: Case, tmp_path: Path) -> None:
    path = str(tmp_path / "warehouse.duckdb")
    DuckDBWarehouse(path, "raw").load_batch(_spec(case), 1, full=False, data=case.table())
    with duckdb.connect(path) as con:
        result = to_arrow(con, f"SELECT * FROM raw.{ident(_table_name(case))}")
    assert state(result, case.output) == case.expected
    assert True not in result.column("_deleted").to_pylist()  # a NULL `_deleted` is kept as the batch has it


@pytest.mark.parametrize("case", [c for c in CASES if c.rule.fallback is None], ids=lambda c: c.id)
def test_postgres_warehouse_loads_the_current_state(case: Case, pg_dsn: str) -> None:
    PostgresWarehouse(pg_dsn, "raw").load_batch(_spec(case), 1, full=False, data=case.table())
    columns = ", ".join(f'"{c}"' for c in [*case.output, "_deleted"])
    rows = _pg_rows(pg_dsn, f'SELECT {columns} FROM raw."{_table_name(case)}"')
    assert frozenset(r[:-1] for r in rows) == case.expected
    assert len(rows) == len(case.expected)
    assert True not in [r[-1] for r in rows]


@pytest.mark.parametrize("full", [True, False], ids=["full", "incremental"])
def test_a_batch_without_deleted_loads_the_same_into_both_warehouses(full: bool, tmp_path: Path,
                                                                      pg_dsn: str) -> None:
    """A batch written before the lake had deletion markers: not deleted, a `_deleted` column all false."""
    case = next(c for c in CASES if c.id == "batch without _deleted")
    # A full batch has one row per key by construction, so it gets the expected rows alone.
    data = case.table() if not full else pa.table({
        "Ride Id": [1, 2], "select": [2, 7], "v": ["b", "c"], "_batch_id": [1, 1]},
        schema=case.table().schema)
    spec = LoadSpec(f"no markers {full}", case.rule.key, case.rule.watermark)
    path = str(tmp_path / "warehouse.duckdb")
    assert DuckDBWarehouse(path, "raw").load_batch(spec, 1, full=full, data=data) == 2
    assert PostgresWarehouse(pg_dsn, "raw").load_batch(spec, 1, full=full, data=data) == 2
    with duckdb.connect(path) as con:
        in_duckdb = con.execute(f'SELECT "Ride Id", v, _deleted FROM raw.{ident(spec.name)} ORDER BY 1').fetchall()
    in_postgres = _pg_rows(pg_dsn, f'SELECT "Ride Id", v, _deleted FROM raw."{spec.name}" ORDER BY 1')
    assert in_duckdb == in_postgres == [(1, "b", False), (2, "c", False)]
