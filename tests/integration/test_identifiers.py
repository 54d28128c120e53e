"""Guarantee: identifiers are always quoted, in the source reader, the lake and the warehouse.

Tables and columns named like SQL keywords, with spaces, mixed case and a quote character replicate
exactly, under the same column names; a table name that is SQL text is only ever a name, never run.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from replicator import Replicator
from replicator.errors import SourceError
from replicator.lake import list_manifest_seqs

from ..conftest import execute, query, write_project
from .helpers import assert_no_duplicate_keys, lake_current, lake_dataset, rows_by_key

# Every name needs quoting: reserved words, a space, mixed case, an embedded double quote.
KEY = "from"
WATERMARK = "Updated At"
COLUMNS = [KEY, "select", "Mixed Case", "with space", "group", 'quo"te', WATERMARK]

# (from, select, Mixed Case, with space, group, quo"te, Updated At)
FIRST = [
    (1, "a", 10, "x y", "g1", 'q"1', "2024-01-01 00:00:01"),
    (2, "b", 20, "", "g2", None, "2024-01-01 00:00:02"),
    (3, None, None, None, None, None, "2024-01-01 00:00:03"),
]
UPDATE = (1, "a2", 11, "changed", "g1", 'q"1 new', "2024-06-01 00:00:00")
INSERT = (4, "d", 40, "new row", "g4", "q4", "2024-06-01 00:00:01")
TABLE_YAML = f"""
    source: app
    table: "{{table}}"
    primary_key: ["{KEY}"]
    watermark: "{WATERMARK}"
"""


def _lit(value: Any) -> str:
    return "NULL" if value is None else str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Dialect:
    """How one source spells the test table: quoting, DDL, and how to read rows back for comparison."""

    name: str
    yaml_table: str
    target: str  # the quoted table for SQL
    quote: Callable[[str], str]
    ddl: str
    ts_literal: Callable[[str], str]

    def insert(self, row: tuple[Any, ...]) -> str:
        cols = ", ".join(self.quote(c) for c in COLUMNS)
        values = [_lit(v) for v in row[:-1]] + [self.ts_literal(row[-1])]
        return f"INSERT INTO {self.target} ({cols}) VALUES ({', '.join(values)})"

    def update(self, row: tuple[Any, ...]) -> str:
        sets = [f"{self.quote(c)} = {_lit(v)}" for c, v in zip(COLUMNS[1:-1], row[1:-1])]
        sets.append(f"{self.quote(WATERMARK)} = {self.ts_literal(row[-1])}")
        return f"UPDATE {self.target} SET {', '.join(sets)} WHERE {self.quote(KEY)} = {row[0]}"


def _dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


POSTGRES = Dialect(
    "postgresql", "Sales Data.order", '"Sales Data"."order"', _dq,
    'CREATE TABLE "Sales Data"."order" ("from" bigint PRIMARY KEY, "select" text, "Mixed Case" integer, '
    '"with space" varchar(20), "group" text, "quo""te" text, "Updated At" timestamptz NOT NULL)',
    lambda ts: f"'{ts}+00'",
)
MARIADB = Dialect(
    "mysql", "order", "`order`", _bq,
    "CREATE TABLE `order` (`from` bigint PRIMARY KEY, `select` text, `Mixed Case` int, `with space` varchar(20), "
    '`group` text, `quo"te` text, `Updated At` datetime(6) NOT NULL) CHARACTER SET utf8mb4',
    lambda ts: f"'{ts}'",
)
SQLITE = Dialect(
    "sqlite", "order", '"order"', _dq,
    'CREATE TABLE "order" ("from" INTEGER PRIMARY KEY, "select" TEXT, "Mixed Case" INTEGER, "with space" VARCHAR(20), '
    '"group" TEXT, "quo""te" TEXT, "Updated At" DATETIME NOT NULL)',
    lambda ts: f"'{ts}.000000'",
)


def _source_rows(dialect: Dialect, url: str) -> dict[tuple, tuple]:
    cols = ", ".join(dialect.quote(c) for c in COLUMNS)
    rows = query(url, f"SELECT {cols} FROM {dialect.target}")
    out = {}
    for r in rows:
        stamp = r[-1]
        if isinstance(stamp, str):  # SQLite keeps DATETIME as text
            stamp = dt.datetime.fromisoformat(stamp)
        if dialect.name == "postgresql":
            stamp = stamp.astimezone(dt.timezone.utc)
        out[(r[0],)] = (*r[:-1], stamp)
    return out


def _duckdb(rep: Replicator, name: str) -> tuple[list[str], dict[tuple, tuple]]:
    path = rep.project.config.warehouse.url.removeprefix("duckdb:///")
    con = duckdb.connect(path, read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = ? "
            "ORDER BY ordinal_position", [name]).fetchall()]
        cols = ", ".join(_dq(c) for c in COLUMNS)
        rows = con.execute(f"SELECT {cols} FROM raw.{_dq(name)}").fetchall()
    finally:
        con.close()
    out = {}
    for r in rows:
        stamp = r[-1]
        out[(r[0],)] = (*r[:-1], stamp.astimezone(dt.timezone.utc) if stamp.tzinfo else stamp)
    return names, out


def _lake(rep: Replicator, name: str) -> dict[tuple, tuple]:
    current = lake_current(rep, name)
    assert_no_duplicate_keys(current, [KEY])
    return rows_by_key(current, [KEY], COLUMNS)


def _check_round_trip(tmp_path: Path, dialect: Dialect, url: str, lake: str, warehouse: str) -> None:
    execute(url, *(dialect.insert(r) for r in FIRST))
    project = write_project(tmp_path / "project", sources={"app": url}, lake=lake, warehouse=warehouse,
                            tables={"orders": TABLE_YAML.format(table=dialect.yaml_table)})
    with Replicator.from_path(project) as rep:
        first = rep.sync("orders")
        assert first.extract.rows_committed == len(FIRST)
        assert _lake(rep, "orders") == _source_rows(dialect, url)

        execute(url, dialect.update(UPDATE), dialect.insert(INSERT))
        second = rep.sync("orders")
        assert second.extract.batch_id == 2
        assert second.extract.rows_committed == 2

        expected = _source_rows(dialect, url)
        assert expected[(1,)][1] == "a2" and (4,) in expected
        assert _lake(rep, "orders") == expected
        assert [f.name for f in lake_dataset(rep, "orders").schema][: len(COLUMNS)] == COLUMNS
        names, warehouse_rows = _duckdb(rep, "orders")
        assert names[: len(COLUMNS)] == COLUMNS
        assert warehouse_rows == expected


def test_postgres_quoted_identifiers(tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str) -> None:
    execute(pg_url, 'CREATE SCHEMA "Sales Data"', POSTGRES.ddl)
    _check_round_trip(tmp_path, POSTGRES, pg_url, s3_lake, duckdb_url)


def test_mariadb_quoted_identifiers(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    execute(mysql_url, MARIADB.ddl)
    _check_round_trip(tmp_path, MARIADB, mysql_url, str(tmp_path / "lake"), duckdb_url)


def test_sqlite_quoted_identifiers(tmp_path: Path, duckdb_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    execute(url, SQLITE.ddl)
    _check_round_trip(tmp_path, SQLITE, url, str(tmp_path / "lake"), duckdb_url)


# --- a table name that is SQL text is a name that is not found -----------------------------------------

INJECTIONS = {
    "postgresql": ["rides; DROP TABLE rides", 'rides"; DROP TABLE rides; --', 'public"; DROP TABLE rides; --.rides'],
    "mysql": ["rides; DROP TABLE rides", "rides`; DROP TABLE rides; --"],
    "sqlite": ["rides; DROP TABLE rides", 'rides"; DROP TABLE rides; --'],
}
RIDES = "CREATE TABLE rides (id bigint PRIMARY KEY, updated_at {ts} NOT NULL)"


def _yaml_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def rides_source(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        execute(url, RIDES.format(ts="timestamptz"), "INSERT INTO rides VALUES (1, now())")
    elif request.param == "mysql":
        url = request.getfixturevalue("mysql_url")
        execute(url, RIDES.format(ts="datetime(6)"), "INSERT INTO rides VALUES (1, now())")
    else:
        url = f"sqlite:///{tmp_path / 'app.db'}"
        execute(url, RIDES.format(ts="DATETIME"), "INSERT INTO rides VALUES (1, '2024-01-01 00:00:00')")
    return request.param, url


def test_table_name_with_sql_is_not_found_and_runs_nothing(tmp_path: Path, rides_source: tuple[str, str],
                                                           duckdb_url: str) -> None:
    dialect, url = rides_source
    for i, name in enumerate(INJECTIONS[dialect]):
        project = write_project(tmp_path / f"p{i}", sources={"app": url}, lake=str(tmp_path / f"lake{i}"),
                                warehouse=duckdb_url, tables={"evil": f"""
                                    source: app
                                    table: {_yaml_quoted(name)}
                                    primary_key: [id]
                                    watermark: updated_at
                                """})
        with Replicator.from_path(project) as rep:
            assert rep.project.table("evil").table == name
            with pytest.raises(SourceError, match="not found") as caught:
                rep.sync("evil")
            assert name in str(caught.value) or repr(name) in str(caught.value), str(caught.value)
            assert list_manifest_seqs(rep.lake, "evil") == []
        # The source table is intact.
        assert query(url, "SELECT count(*) FROM rides") == [(1,)]
    if dialect == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
            assert con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("rides",)]
