"""The edges of the type map: each value arrives exactly in the lake and both warehouses, or stops the sync.

Values Python's datetime cannot hold (years beyond 9999, BC) are compared as days or microseconds
since 1970, computed by each engine itself; floats by their repr, so NaN compares equal to NaN. A stop
must be a replicator error naming the table and the column and saying what to do, with nothing committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from replicator import Replicator
from replicator.errors import SourceError
from replicator.lake import list_manifest_seqs
from replicator.sources.mysql import MySQLSource
from replicator.sources.postgres import PostgresSource

from ..conftest import execute, query, write_project
from .helpers import lake_current, lake_dataset

pytestmark = pytest.mark.integration

WIDE = "12345678901234567890123456789012345.123456789012345678901234567891"
YAML = "source: app\ntable: {table}\nprimary_key: [{key}]\nwatermark: updated_at\n"


@pytest.fixture(params=[True, False], ids=["fast_path", "row_path"])
def use_arrow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Both readers: ADBC/connectorx where exact, and the drivers' row path."""
    monkeypatch.setattr(PostgresSource, "use_arrow", request.param)
    monkeypatch.setattr(MySQLSource, "use_arrow", request.param)
    yield request.param


def _rep(tmp_path: Path, source: str, warehouse: str, name: str, table: str, key: str = "id",
         options: str = "") -> Replicator:
    project = write_project(tmp_path / name, sources={"app": source}, lake=str(tmp_path / name / "lake"),
                            warehouse=warehouse, tables={name: YAML.format(table=table, key=key)},
                            source_options=options)
    return Replicator.from_path(project)


def _duck(tmp_path: Path, name: str) -> str:
    return f"duckdb:///{tmp_path / name / 'warehouse.duckdb'}"


def _duck_query(rep: Replicator, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(rep.project.config.warehouse.url.removeprefix("duckdb:///"), read_only=True)
    try:
        return [tuple(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def _f32(v: Any) -> str | None:
    # A REAL/FLOAT is a binary32: drivers print it shortest, Arrow and DuckDB widen it exactly.
    return None if v is None else repr(float(np.float32(v)))


def _f64(v: Any) -> str | None:
    return None if v is None else repr(float(v))  # repr: NaN equals NaN, and -0.0 differs from 0.0


def _lake(rep: Replicator, name: str, columns: list[str], as_ints: tuple[str, ...] = ()) -> dict[Any, tuple[Any, ...]]:
    """The lake's rows of a one-batch table; dates and timestamps in `as_ints` as days / microseconds since 1970.

    Read with pyarrow alone: `lake_current` dedupes in DuckDB, whose Arrow scan refuses decimal256.
    """
    table = lake_dataset(rep, name)
    arrays = []
    for c in columns:
        array = table.column(c)
        if c in as_ints:
            array = array.cast(pa.int32() if pa.types.is_date32(array.type) else pa.int64())
        arrays.append(array.to_pylist())
    return {r[0]: r for r in zip(*arrays)}


def _assert_rows(got: dict[Any, tuple[Any, ...]], expected: dict[Any, tuple[Any, ...]], where: str) -> None:
    """Every row and column equal; a failure lists each differing row in full."""
    wrong = [f"id={k}: source {expected.get(k)!r} != {where} {got.get(k)!r}"
             for k in sorted(set(got) | set(expected)) if got.get(k) != expected.get(k)]
    assert not wrong, "\n".join(wrong)


def _assert_stopped(rep: Replicator, name: str, column: str, *words: str) -> None:
    with pytest.raises(SourceError) as caught:
        rep.sync(name)
    message = str(caught.value)
    assert f"{name}.yml" in message and repr(column) in message, message
    assert "nothing was written" in message and "`columns:`" in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    assert list_manifest_seqs(rep.lake, name) == []
    assert rep.warehouse.row_count(name) is None


# --- PostgreSQL: dates, timestamps, floats, wide numeric, char ---------------------------------------------

PG_DDL = ("CREATE TABLE edges (id int PRIMARY KEY, d date, ts timestamp(6), tstz timestamptz(6), r real, "
          "f double precision, n numeric(65,30), c char(10), updated_at timestamptz NOT NULL DEFAULT '2024-01-01+00')")
PG_ROWS = [
    "(1, '0001-01-01', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', 'NaN', 'NaN', " + WIDE + ", 'BUILDING')",
    "(2, '1969-12-31', '1969-12-31 23:59:59.999999', '1969-12-31 23:59:59.999999+00', 'Infinity', 'Infinity', -"
    + WIDE + ", 'ab')",
    "(3, '2262-04-12', '2262-04-12 23:47:16.854776', '2262-04-12 23:47:16.854776+00', '-Infinity', '-Infinity', 0, '')",
    "(4, '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00', '-0', '-0', NULL, NULL)",
]
# Beyond Python's datetime (PostgreSQL holds 4714 BC to 5874897 AD): ADBC carries them, psycopg2 cannot.
PG_FAR_ROWS = [
    "(5, '10000-01-01', '10000-01-01 00:00:00.000001', '200000-06-01 12:00:00+00', 1.5, 1e308, 1, 'x')",
    "(6, '4714-11-24 BC', '4713-01-01 00:00:00 BC', '0001-12-31 23:59:59.999999+00 BC', 0.1, 1e-300, 2, 'y')",
]
PG_EPOCH = ("id, d - date '1970-01-01', (extract(epoch FROM ts) * 1000000)::bigint, "
            "(extract(epoch FROM tstz) * 1000000)::bigint, r, f, n, c::text")
DUCK_EPOCH = "id, date_diff('day', DATE '1970-01-01', d), epoch_us(ts), epoch_us(tstz), r, f, n, c"
COLUMNS = ["id", "d", "ts", "tstz", "r", "f", "n", "c"]


def _pg_row(row: tuple[Any, ...], decimal_as_text: bool = False) -> tuple[Any, ...]:
    """(id, days, us, us, real, double, numeric, char) in comparable form."""
    id_, d, ts, tstz, r, f, n, c = row
    if decimal_as_text and n is not None:
        n = format(n, "f")  # the exact text DuckDB holds, with every declared decimal
    return (id_, d, ts, tstz, _f32(r), _f64(f), n, c)


@pytest.mark.parametrize("warehouse", ["duckdb", "postgresql"])
def test_postgres_edge_values_are_exact_everywhere(tmp_path: Path, pg_url: str, use_arrow: bool, warehouse: str) -> None:
    rows = PG_ROWS + (PG_FAR_ROWS if use_arrow else [])
    execute(pg_url, PG_DDL, "INSERT INTO edges (id, d, ts, tstz, r, f, n, c) VALUES " + ", ".join(rows))
    source = {r[0]: _pg_row(r) for r in query(pg_url, f"SELECT {PG_EPOCH} FROM edges")}
    assert [source[i][4] for i in (1, 2, 3, 4)] == ["nan", "inf", "-inf", "-0.0"]
    # PostgreSQL's own char -> text cast drops the padding that psycopg2 shows for bpchar.
    assert query(pg_url, "SELECT c FROM edges WHERE id = 1") == [("BUILDING  ",)] and source[1][7] == "BUILDING"

    with _rep(tmp_path, pg_url, _duck(tmp_path, "edges") if warehouse == "duckdb" else pg_url, "edges",
              "public.edges") as rep:
        rep.sync("edges")
        lake = {r[0]: _pg_row(r) for r in _lake(rep, "edges", COLUMNS, as_ints=("d", "ts", "tstz")).values()}
        _assert_rows(lake, source, "lake")
        assert lake[1][6] == Decimal(WIDE) and lake[2][6] == Decimal("-" + WIDE) and lake[1][7] == "BUILDING"

        if warehouse == "duckdb":
            got = {r[0]: _pg_row(r) for r in _duck_query(rep, f"SELECT {DUCK_EPOCH} FROM raw.edges")}
            expected = {k: _pg_row(v, decimal_as_text=True) for k, v in source.items()}
            types = dict(_duck_query(rep, "SELECT column_name, data_type FROM information_schema.columns "
                                          "WHERE table_schema = 'raw' AND table_name = 'edges'"))
            assert (types["n"], types["r"], types["c"]) == ("VARCHAR", "FLOAT", "VARCHAR")
            assert _duck_query(rep, "SELECT comment FROM duckdb_columns() WHERE table_name = 'edges' "
                                    "AND column_name = 'n'") == [("decimal(65,30)",)]
            found = _duck_query(rep, "SELECT id FROM raw.edges WHERE c = 'BUILDING'")
        else:
            got = {r[0]: _pg_row(r) for r in query(pg_url, f"SELECT {PG_EPOCH} FROM raw.edges")}
            expected = source
            assert query(pg_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                 "WHERE attrelid = 'raw.edges'::regclass AND attname = 'n'") == [("numeric(65,30)",)]
            found = query(pg_url, "SELECT id FROM raw.edges WHERE c = 'BUILDING'")
        _assert_rows(got, expected, warehouse)
        assert found == [(1,)]


PG_STOPS = [
    ("date", "'infinity'", "'infinity'"),
    ("date", "'-infinity'", "'infinity'"),
    ("timestamp", "'infinity'", "'infinity'"),
    ("timestamptz", "'-infinity'", "'infinity'"),
    ("timestamptz", "'294276-12-31 00:00:00+00'", "beyond"),
    ("numeric", "'NaN'", "NaN"),
    ("numeric", "'Infinity'", "nf"),
    ("numeric(10,2)", "'NaN'", "NaN"),
]


@pytest.mark.parametrize(("ddl", "value", "word"), PG_STOPS, ids=[f"{d} {v}" for d, v, _ in PG_STOPS])
def test_postgres_values_no_arrow_type_holds_stop_the_sync(tmp_path: Path, pg_url: str, duckdb_url: str,
                                                           ddl: str, value: str, word: str) -> None:
    execute(pg_url, f"CREATE TABLE odd (id int PRIMARY KEY, v {ddl}, updated_at timestamptz NOT NULL DEFAULT now())",
            f"INSERT INTO odd (id, v) VALUES (1, NULL), (2, {value})")
    with _rep(tmp_path, pg_url, duckdb_url, "odd", "public.odd") as rep:
        _assert_stopped(rep, "odd", "v", word)


def test_postgres_non_finite_numeric_stops_the_row_path_too(tmp_path: Path, pg_url: str, duckdb_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PostgresSource, "use_arrow", False)
    execute(pg_url, "CREATE TABLE odd (id int PRIMARY KEY, v numeric, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO odd (id, v) VALUES (1, 1.5), (2, '-Infinity')")
    with _rep(tmp_path, pg_url, duckdb_url, "odd", "public.odd") as rep:
        _assert_stopped(rep, "odd", "v", "-Infinity")


ROW_PATH_STOPS = [("date", "'infinity'"), ("date", "'-infinity'"), ("timestamp", "'infinity'"),
                  ("timestamptz", "'-infinity'"), ("date", "'10000-01-01'"), ("timestamp", "'0044-03-15 12:00:00 BC'")]


@pytest.mark.parametrize(("ddl", "value"), ROW_PATH_STOPS, ids=[f"{d} {v}" for d, v in ROW_PATH_STOPS])
def test_postgres_row_path_stops_on_dates_python_cannot_hold(tmp_path: Path, pg_url: str, duckdb_url: str,
                                                             monkeypatch: pytest.MonkeyPatch, ddl: str, value: str) -> None:
    """psycopg2 reads 'infinity' as 9999-12-31 by default: the row path must stop instead, naming the column."""
    monkeypatch.setattr(PostgresSource, "use_arrow", False)
    execute(pg_url, f"CREATE TABLE odd (id int PRIMARY KEY, v {ddl}, updated_at timestamptz NOT NULL DEFAULT now())",
            f"INSERT INTO odd (id, v) VALUES (1, '2026-01-01'), (2, {value})")
    with _rep(tmp_path, pg_url, duckdb_url, "odd", "public.odd") as rep:
        _assert_stopped(rep, "odd", "v", value.strip("'"))


# --- MariaDB: unsigned, wide decimal, date range, bit(64), TIME beyond a day --------------------------------

MY_DDL = ("CREATE TABLE edges (id int PRIMARY KEY, ub bigint unsigned, n decimal(65,30), d date, dtm datetime(6), "
          "f float, g double, c char(10), updated_at datetime(6) NOT NULL DEFAULT '2024-01-01')")
MY_ROWS = [
    f"(1, 18446744073709551615, {WIDE}, '0001-01-01', '0001-01-01 00:00:00', 1.5, 1e308, 'BUILDING')",
    f"(2, 0, -{WIDE}, '1969-12-31', '1969-12-31 23:59:59.999999', -2.5, -1e-300, 'ab')",
    "(3, 9223372036854775808, 0, '2262-04-12', '2262-04-12 23:47:16.854776', 0, 0, '')",
    "(4, NULL, NULL, '9999-12-31', '9999-12-31 23:59:59.999999', NULL, NULL, NULL)",
]
MY_EPOCH = ("id, ub, n, datediff(d, '1970-01-01'), timestampdiff(MICROSECOND, '1970-01-01', dtm), f, g, c")
DUCK_MY_EPOCH = "id, ub, n, date_diff('day', DATE '1970-01-01', d), epoch_us(dtm), f, g, c"


def _my_row(row: tuple[Any, ...], decimal_as_text: bool = False) -> tuple[Any, ...]:
    """(id, unsigned, decimal, days, us, float, double, char) in comparable form."""
    id_, ub, n, d, dtm, f, g, c = row
    if decimal_as_text and n is not None:
        n = format(n, "f")
    return (id_, None if ub is None else int(ub), n, d, dtm, _f32(f), _f64(g), c)


@pytest.mark.parametrize("warehouse", ["duckdb", "postgresql"])
def test_mariadb_edge_values_are_exact_everywhere(tmp_path: Path, mysql_url: str, pg_url: str, use_arrow: bool,
                                                  warehouse: str) -> None:
    execute(mysql_url, MY_DDL, "INSERT INTO edges (id, ub, n, d, dtm, f, g, c) VALUES " + ", ".join(MY_ROWS))
    source = {r[0]: _my_row(r) for r in query(mysql_url, f"SELECT {MY_EPOCH} FROM edges")}
    assert source[1][1] == 2**64 - 1 and source[1][2] == Decimal(WIDE) and source[2][2] == Decimal("-" + WIDE)

    with _rep(tmp_path, mysql_url, _duck(tmp_path, "edges") if warehouse == "duckdb" else pg_url, "edges", "edges") as rep:
        rep.sync("edges")
        lake = _lake(rep, "edges", ["id", "ub", "n", "d", "dtm", "f", "g", "c"], as_ints=("d", "dtm"))
        _assert_rows({k: _my_row(v) for k, v in lake.items()}, source, "lake")
        if warehouse == "duckdb":
            got = {r[0]: _my_row(r) for r in _duck_query(rep, f"SELECT {DUCK_MY_EPOCH} FROM raw.edges")}
            expected = {k: _my_row(v, decimal_as_text=True) for k, v in lake.items()}
            types = dict(_duck_query(rep, "SELECT column_name, data_type FROM information_schema.columns "
                                          "WHERE table_schema = 'raw' AND table_name = 'edges'"))
            assert (types["ub"], types["n"]) == ("UBIGINT", "VARCHAR")
            found = _duck_query(rep, "SELECT id FROM raw.edges WHERE c = 'BUILDING'")
        else:
            got = {r[0]: _my_row(r) for r in query(pg_url, "SELECT id, ub, n, d - date '1970-01-01', "
                                                   "(extract(epoch FROM dtm) * 1000000)::bigint, f, g, c FROM raw.edges")}
            expected = source
            found = query(pg_url, "SELECT id FROM raw.edges WHERE c = 'BUILDING'")
        _assert_rows(got, expected, warehouse)
        assert found == [(1,)]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgresql"])
def test_mariadb_bit64_is_exact_everywhere(tmp_path: Path, mysql_url: str, pg_url: str, warehouse: str) -> None:
    execute(mysql_url, "CREATE TABLE bits (id int PRIMARY KEY, b bit(64), updated_at datetime(6) NOT NULL DEFAULT '2024-01-01')",
            "INSERT INTO bits (id, b) VALUES (1, b'" + "1" * 64 + "'), (2, b'0'), (3, b'1" + "0" * 63 + "'), (4, NULL)")
    expected = {1: 2**64 - 1, 2: 0, 3: 2**63, 4: None}
    with _rep(tmp_path, mysql_url, _duck(tmp_path, "bits") if warehouse == "duckdb" else pg_url, "bits", "bits") as rep:
        rep.sync("bits")
        assert {r["id"]: r["b"] for r in lake_current(rep, "bits").to_pylist()} == expected
        if warehouse == "duckdb":
            rows = _duck_query(rep, "SELECT id, b FROM raw.bits")
        else:
            rows = [(i, None if b is None else int(b)) for i, b in query(pg_url, "SELECT id, b FROM raw.bits")]
        assert dict(rows) == expected


@pytest.mark.parametrize("value", ["'24:00:00'", "'838:59:59'", "'-00:00:01'"])
def test_mariadb_time_beyond_a_day_stops_the_sync(tmp_path: Path, mysql_url: str, duckdb_url: str, use_arrow: bool,
                                                  value: str) -> None:
    execute(mysql_url, "CREATE TABLE durations (id int PRIMARY KEY, t time(6), updated_at datetime(6) NOT NULL DEFAULT now())",
            f"INSERT INTO durations (id, t) VALUES (1, '23:59:59.999999'), (2, {value})")
    with _rep(tmp_path, mysql_url, duckdb_url, "durations", "durations") as rep:
        _assert_stopped(rep, "durations", "t", "TIME value")


# --- char(n): the same strings from both sources, in the lake and both warehouses --------------------------

CHAR_ROWS = [("a", "BUILDING"), ("b", "MACHINERY"), ("cc", "BUILDING"), ("d", ""), ("e", None), ("f", "  lead")]


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_char_columns_lose_their_padding_and_char_keys_page(tmp_path: Path, pg_url: str, mysql_url: str,
                                                             use_arrow: bool, dialect: str) -> None:
    url = pg_url if dialect == "postgresql" else mysql_url
    execute(url, "CREATE TABLE segments (k char(4) PRIMARY KEY, c char(10), updated_at "
                 + ("timestamptz" if dialect == "postgresql" else "datetime(6)") + " NOT NULL DEFAULT '2024-01-01')",
            "INSERT INTO segments (k, c) VALUES " + ", ".join(
                f"('{k}', {'NULL' if c is None else repr(c)})" for k, c in CHAR_ROWS))
    expected = {k: (k, c) for k, c in CHAR_ROWS}
    table = "public.segments" if dialect == "postgresql" else "segments"
    for warehouse in ("duckdb", "postgresql"):
        # chunk_rows 2: the full read pages through the char key, binding the stripped values.
        with _rep(tmp_path / warehouse, url, _duck(tmp_path / warehouse, "segments") if warehouse == "duckdb"
                  else pg_url, "segments", table, key="k", options="chunk_rows: 2") as rep:
            rep.sync("segments")
            lake = {r["k"]: (r["k"], r["c"]) for r in lake_current(rep, "segments").to_pylist()}
            assert lake == expected
            if warehouse == "duckdb":
                rows = _duck_query(rep, "SELECT k, c FROM raw.segments")
                found = _duck_query(rep, "SELECT k FROM raw.segments WHERE c = 'BUILDING' ORDER BY k")
            else:
                rows = query(pg_url, "SELECT k, c FROM raw.segments")
                found = query(pg_url, "SELECT k FROM raw.segments WHERE c = 'BUILDING' ORDER BY k")
            assert {r[0]: tuple(r) for r in rows} == expected
            assert found == [("a",), ("cc",)]


def test_read_table_keeps_wide_decimals_exact(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    """The lake's current state (read_table, snapshot) holds decimal(65,30) exactly, as the lake files do."""
    execute(mysql_url, "CREATE TABLE wide (id int PRIMARY KEY, n decimal(65,30), "
                       "updated_at datetime(6) NOT NULL DEFAULT UTC_TIMESTAMP(6))",
            f"INSERT INTO wide (id, n) VALUES (1, {WIDE}), (2, -{WIDE}), (3, NULL)")
    with _rep(tmp_path, mysql_url, duckdb_url, "wide", "wide") as rep:
        rep.sync("wide")
        execute(mysql_url, "UPDATE wide SET n = 1, updated_at = UTC_TIMESTAMP(6) WHERE id = 3")
        rep.sync("wide")
        state = rep.read_table("wide")
        assert state.schema.field("n").type == pa.decimal256(65, 30)
        assert sorted((r["id"], r["n"]) for r in state.to_pylist()) == [
            (1, Decimal(WIDE)), (2, Decimal("-" + WIDE)), (3, Decimal(1))]
        assert {r["id"]: r["n"] for r in rep.read_table("wide", as_of=1).to_pylist()}[3] is None
