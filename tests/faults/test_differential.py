"""Differential property: random table shapes and histories, judged by the independent oracle.

Hypothesis draws a table (a primary key of one or two int/bigint/varchar columns, payload columns from
the type map, NULLs allowed), a watermark kind (a timestamp stamped with the database clock, a date
stamped with the database's date, an integer from a sequence / AUTO_INCREMENT on an append-only table,
or `replication: full`), a way deletes reach the lake (`soft_delete`, hard deletes found by
`delete_detection: reconcile`, or a full table) and a history of steps: inserts, updates, deletes, syncs
(`lookback: 0s`, or 0 for integers), a long transaction on a second connection that writes rows and stays
open across the steps after it until it commits, and sync subprocesses SIGKILLed at a point of the commit
protocol (tests/faults/killer.py). After the last step, with no transaction open, a final sync must leave
the lake's current state and the warehouse equal to the source (tests/oracle.py, which shares no code
with replicator), and one more sync must commit nothing.

Each example gets a fresh source table, lake and warehouse; both dialects run the same examples
(derandomized), without shrinking, so the module's runtime stays bounded. A failure prints the example's
steps and the oracle's diff.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import signal
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from replicator import Replicator

from .. import oracle
from ..conftest import mysql_database, pg_database
from .common import STATS, finish, spawn
from .killer import NOT_KILLED, POINTS

pytestmark = pytest.mark.integration

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="replicator-hypothesis-"))

NAME = "events"  # the table's YAML name (lake folder, warehouse table)

# -- table shapes --------------------------------------------------------------------------------------

KEY_KINDS = ("int", "bigint", "varchar")
PAYLOAD_KINDS = ("int", "bigint", "numeric", "double", "text", "varchar", "boolean", "date", "timestamp",
                 "timestamptz")
WATERMARKS = ("timestamp", "date", "integer", "full")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    precision: int = 0
    scale: int = 0

    def ddl(self, dialect: str) -> str:
        pg = dialect == "postgresql"
        if self.kind == "numeric":
            return f"{'numeric' if pg else 'decimal'}({self.precision},{self.scale})"
        types = {
            "int": ("integer", "int"), "bigint": ("bigint", "bigint"), "double": ("double precision", "double"),
            "text": ("text", "text"), "varchar": ("varchar(40)", "varchar(40)"), "boolean": ("boolean", "boolean"),
            "date": ("date", "date"), "timestamp": ("timestamp", "datetime(6)"),
            # MariaDB: an explicit NULL default keeps TIMESTAMP from stamping itself.
            "timestamptz": ("timestamptz", "timestamp(6) NULL DEFAULT NULL"),
        }
        return types[self.kind][0 if pg else 1]


@dataclass(frozen=True)
class Shape:
    key: tuple[Column, ...]
    payload: tuple[Column, ...]
    watermark: str  # one of WATERMARKS
    deletes: str  # "soft" | "reconcile" | "hard" (full tables) | "none"
    warehouse: str  # "duckdb" | "postgresql"

    @property
    def watermark_column(self) -> str | None:
        return {"timestamp": "updated_at", "date": "updated_on", "integer": "seq"}.get(self.watermark)

    @property
    def updatable(self) -> bool:
        return self.watermark != "integer"  # integer watermarks: append-only


@dataclass(frozen=True)
class Step:
    kind: str  # insert | update | delete | sync | crash | open | commit | reconcile
    rows: tuple[tuple[Any, ...], ...] = ()  # payload values: new rows (insert, open), new versions (update, open)
    picks: tuple[int, ...] = ()  # which existing keys (update, delete, open's updates)
    point: str = ""  # crash


@dataclass(frozen=True)
class Scenario:
    shape: Shape
    steps: tuple[Step, ...]


def _value(column: Column) -> st.SearchStrategy[Any]:
    """Values both dialects store exactly (MariaDB's TIMESTAMP range, no NaN or infinity, no NUL)."""
    if column.kind == "int":
        return st.integers(-2**31, 2**31 - 1)
    if column.kind == "bigint":
        return st.integers(-2**63, 2**63 - 1)
    if column.kind == "numeric":
        digits = column.precision - column.scale  # written out: Decimal arithmetic rounds to 28 digits
        top = decimal.Decimal(("9" * digits or "0") + ("." + "9" * column.scale if column.scale else ""))
        return st.decimals(-top, top, places=column.scale, allow_nan=False, allow_infinity=False)
    if column.kind == "double":
        return st.floats(allow_nan=False, allow_infinity=False)
    if column.kind in ("text", "varchar"):
        return st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
    if column.kind == "boolean":
        return st.booleans()
    if column.kind == "date":
        return st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))
    if column.kind == "timestamp":
        return st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59))
    return st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 18))  # timestamptz, as naive UTC


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    key = tuple(Column(f"k{i + 1}", draw(st.sampled_from(KEY_KINDS))) for i in range(draw(st.integers(1, 2))))
    payload = []
    for i, kind in enumerate(draw(st.lists(st.sampled_from(PAYLOAD_KINDS), max_size=4))):
        precision = draw(st.integers(1, 38)) if kind == "numeric" else 0
        scale = draw(st.integers(0, min(precision, 10))) if kind == "numeric" else 0
        payload.append(Column(f"c{i}", kind, precision, scale))
    watermark = draw(st.sampled_from(WATERMARKS))
    deletes = {"timestamp": ("soft", "reconcile"), "date": ("soft", "reconcile"), "integer": ("reconcile", "none"),
               "full": ("hard",)}[watermark]
    shape = Shape(key, tuple(payload), watermark, draw(st.sampled_from(deletes)),
                  draw(st.sampled_from(("duckdb", "postgresql"))))
    row = st.tuples(*(st.none() | _value(c) for c in payload))
    rows = st.lists(row, min_size=1, max_size=4).map(tuple)
    picks = st.lists(st.integers(0, 1000), min_size=1, max_size=3).map(tuple)
    kinds = ["insert", "insert", "sync", "sync", "open", "commit", "crash"]
    if shape.updatable:
        kinds.append("update")
    if shape.deletes != "none":
        kinds.append("delete")
    if shape.deletes == "reconcile":
        kinds.append("reconcile")
    steps = []
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=2, max_size=8)):
        if kind == "insert":
            steps.append(Step(kind, rows=draw(rows)))
        elif kind == "update":
            steps.append(Step(kind, rows=draw(rows), picks=draw(picks)))
        elif kind == "delete":
            steps.append(Step(kind, picks=draw(picks)))
        elif kind == "open":
            steps.append(Step(kind, rows=draw(rows), picks=draw(picks) if shape.updatable else ()))
        elif kind == "crash":
            steps.append(Step(kind, point=draw(st.sampled_from(POINTS))))
        else:
            steps.append(Step(kind))
    return Scenario(shape, tuple(steps))


# -- the source, written through plain driver connections ---------------------------------------------

def key_value(column: Column, n: int) -> Any:
    """The nth key of a column: injective, not increasing with n (keys arrive out of order)."""
    m = n * 7919 % 100_003
    if column.kind == "int":
        return m - 50_000
    if column.kind == "bigint":
        return (m - 50_000) * 2**40 + 1  # beyond 2^53
    return ("k", "K é", "k-")[n % 3] + str(m)


def key_of(key: tuple[Column, ...], n: int) -> tuple:
    """The nth new key: a one-column key takes n; two columns take (n // 3, n % 3), so first values repeat."""
    parts = (n,) if len(key) == 1 else (n // 3, n % 3)
    return tuple(key_value(c, p) for c, p in zip(key, parts))


class Source:
    """The test table on one dialect: DDL, and the application's writes stamped with the database clock."""

    def __init__(self, dialect: str, url: str, table: str, shape: Shape) -> None:
        self.dialect, self.url, self.table, self.shape = dialect, url, table, shape
        pg = dialect == "postgresql"
        self.now = "now()" if pg else "UTC_TIMESTAMP(6)"
        self.stamp = {"timestamp": self.now, "date": "current_date" if pg else "UTC_DATE()"}.get(shape.watermark)

    def connect(self, autocommit: bool) -> Any:
        return oracle.connect(self.url, autocommit=autocommit)  # sessions in UTC: timestamp(6) values as written

    def create(self, con: Any) -> None:
        s, pg = self.shape, self.dialect == "postgresql"
        cols = [f"{c.name} {c.ddl(self.dialect)} NOT NULL" for c in s.key]
        cols += [f"{c.name} {c.ddl(self.dialect)}" for c in s.payload]
        if s.watermark == "timestamp":
            cols.append(f"updated_at {'timestamptz' if pg else 'datetime(6)'} NOT NULL")
        elif s.watermark == "date":
            cols.append("updated_on date NOT NULL")
        elif s.watermark == "integer":
            cols.append("seq bigint GENERATED BY DEFAULT AS IDENTITY UNIQUE" if pg
                        else "seq bigint NOT NULL AUTO_INCREMENT UNIQUE")
        if s.deletes == "soft":
            cols.append(f"deleted_at {'timestamptz' if pg else 'datetime(6)'}")
        cols.append(f"PRIMARY KEY ({', '.join(c.name for c in s.key)})")
        with con.cursor() as cur:
            cur.execute(f"CREATE TABLE {self.table} ({', '.join(cols)})")

    def insert(self, con: Any, keys: list[tuple], rows: tuple[tuple[Any, ...], ...]) -> None:
        s = self.shape
        names = [c.name for c in (*s.key, *s.payload)]
        values = ["%s"] * len(names)
        if self.stamp:
            names.append(s.watermark_column)  # type: ignore[arg-type]
            values.append(self.stamp)
        with con.cursor() as cur:
            cur.executemany(f"INSERT INTO {self.table} ({', '.join(names)}) VALUES ({', '.join(values)})",
                            [(*k, *r) for k, r in zip(keys, rows)])

    def _where(self) -> str:
        return " AND ".join(f"{c.name} = %s" for c in self.shape.key)

    def update(self, con: Any, keys: list[tuple], rows: tuple[tuple[Any, ...], ...]) -> None:
        s = self.shape
        sets = [f"{c.name} = %s" for c in s.payload] + ([f"{s.watermark_column} = {self.stamp}"] if self.stamp else [])
        if not sets:
            return  # a full table without payload: nothing can change
        with con.cursor() as cur:
            cur.executemany(f"UPDATE {self.table} SET {', '.join(sets)} WHERE {self._where()}",
                            [(*r, *k) for k, r in zip(keys, rows)])

    def delete(self, con: Any, keys: list[tuple]) -> None:
        s = self.shape
        with con.cursor() as cur:
            if s.deletes == "soft":
                cur.executemany(f"UPDATE {self.table} SET deleted_at = {self.now}, {s.watermark_column} = "
                                f"{self.stamp} WHERE {self._where()}", keys)
            else:
                cur.executemany(f"DELETE FROM {self.table} WHERE {self._where()}", keys)


# -- the project ---------------------------------------------------------------------------------------

def write_project(folder: Path, source_url: str, table: str, shape: Shape, warehouse_url: str,
                  warehouse_schema: str) -> Path:
    """Small read batches, row groups and files, so one sync spans several of each."""
    (folder / "schemas").mkdir(parents=True)
    (folder / "replicator.yml").write_text(textwrap.dedent(f"""\
        sources:
          app:
            url: '{source_url}'
            batch_rows: 3
        lake:
          url: '{folder / "lake"}'
          row_group_rows: 4
          file_max_rows: 8
        warehouse:
          url: '{warehouse_url}'
          schema: {warehouse_schema}
        defaults:
          lease_ttl: 1h
        """))
    lines = ["source: app", f"table: {table}", f"primary_key: [{', '.join(c.name for c in shape.key)}]"]
    if shape.watermark == "full":
        lines.append("replication: full")
    else:
        lines += [f"watermark: {shape.watermark_column}", f"lookback: {0 if shape.watermark == 'integer' else '0s'}"]
    if shape.deletes == "soft":
        lines.append("soft_delete: deleted_at")
    if shape.deletes == "reconcile":
        lines += ["delete_detection: reconcile", "delete_guard: 1.0", "reconcile_every: 0s"]
    (folder / "schemas" / f"{NAME}.yml").write_text("\n".join(lines) + "\n")
    return folder / "replicator.yml"


# -- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def diff_pg() -> Iterator[str]:
    with pg_database("rd") as url:
        yield url


@pytest.fixture(scope="module")
def diff_mysql() -> Iterator[str]:
    with mysql_database("rd") as url:
        yield url


@pytest.fixture(scope="module")
def diff_warehouse() -> Iterator[str]:
    """A PostgreSQL warehouse shared by the module's examples, one schema each."""
    with pg_database("rdw", drivername="postgresql") as url:
        yield url


_tables = itertools.count(1)


# -- the property --------------------------------------------------------------------------------------

def _sync(project: Path) -> Any:
    with Replicator.from_path(project) as rep:
        return rep.sync(NAME)


def run(scenario: Scenario, dialect: str, source_url: str, pg_warehouse: str, *, idempotent: bool = True) -> None:
    shape = scenario.shape
    n = next(_tables)
    table, schema = f"diff_{n}", f"raw_{n}"
    source = Source(dialect, source_url, table, shape)
    with tempfile.TemporaryDirectory(prefix="replicator-diff-") as folder:
        root = Path(folder)
        warehouse = f"duckdb:///{root / 'warehouse.duckdb'}" if shape.warehouse == "duckdb" else pg_warehouse
        project = write_project(root / "project", source_url, table, shape, warehouse, schema)
        app = source.connect(autocommit=True)
        long: Any = None
        try:
            source.create(app)
            counter = itertools.count()
            alive: list[tuple] = []  # committed keys, not deleted
            pending: list[tuple] = []  # inserted by the open long transaction
            locked: set[tuple] = set()  # written by the open long transaction

            def new_keys(count: int) -> list[tuple]:
                return [key_of(shape.key, next(counter)) for _ in range(count)]

            def picked(picks: tuple[int, ...]) -> list[tuple]:
                free = [k for k in alive if k not in locked]
                return sorted({free[p % len(free)] for p in picks}, key=repr) if free else []

            for i, step in enumerate(scenario.steps):
                note(f"step {i}: {step}")
                if step.kind == "insert":
                    keys = new_keys(len(step.rows))
                    source.insert(app, keys, step.rows)
                    alive += keys
                elif step.kind == "update":
                    keys = picked(step.picks)
                    source.update(app, keys, step.rows[: len(keys)])
                elif step.kind == "delete":
                    keys = picked(step.picks)
                    source.delete(app, keys)
                    alive = [k for k in alive if k not in keys]
                elif step.kind == "open" and long is None:
                    long = source.connect(autocommit=False)
                    if dialect == "mariadb":
                        long.begin()
                    keys = new_keys(len(step.rows))
                    source.insert(long, keys, step.rows)
                    updated = picked(step.picks)
                    source.update(long, updated, step.rows[: len(updated)])
                    pending, locked = keys, set(keys) | set(updated)
                elif step.kind == "commit" and long is not None:
                    long.commit()
                    long.close()
                    long, alive, pending, locked = None, alive + pending, [], set()
                elif step.kind == "sync":
                    _sync(project)
                elif step.kind == "crash":
                    code, output = finish({"crash": spawn("-m", "tests.faults.killer", str(project), NAME,
                                                          step.point)})["crash"]
                    assert code in (-signal.SIGKILL, NOT_KILLED), f"step {i}: the killed sync failed\n{output}"
                elif step.kind == "reconcile":
                    with Replicator.from_path(project) as rep:
                        rep.reconcile(NAME, apply_deletes=True)
            if long is not None:
                long.commit()
                long.close()
                long = None
            _sync(project)
            report = oracle.replica_report(
                source_url=source_url, source_table=table, lake_url=str(root / "project" / "lake"),
                warehouse_url=warehouse, warehouse_schema=schema, name=NAME,
                key=[c.name for c in shape.key], watermark=shape.watermark_column,
                soft_delete="deleted_at" if shape.deletes == "soft" else None)
            STATS["ran"] += 1
            STATS["lost"] += report.lost
            STATS["duplicates"] += report.duplicates
            assert not report.problems(), "after the final sync:\n" + "\n".join(report.problems())
            if not idempotent:
                return
            again = _sync(project).extract
            assert again.rows_committed == 0, (f"a sync with no source change committed {again.rows_committed} "
                                               f"rows (batch {again.batch_id})")
        finally:
            if long is not None:
                long.rollback()
                long.close()
            with app.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
            app.close()


K = (Column("k1", "int"),)
LATE_DATE = Scenario(  # a row updated on the day of the last sync, its key below the last key read
    Shape(K, (Column("c0", "int"),), "date", "soft", "duckdb"),
    (Step("insert", rows=((1,), (2,), (3,))), Step("sync"), Step("update", rows=((10,),), picks=(0,))))
LATE_ID = Scenario(  # an id handed out before a higher one, committed after a sync read the higher one
    Shape(K, (Column("c0", "int"),), "integer", "none", "duckdb"),
    (Step("open", rows=((1,),)), Step("insert", rows=((2,),)), Step("sync"), Step("commit")))
LATE_TIMESTAMP = Scenario(  # the same late commit with a timestamp watermark: the horizon holds it back
    Shape(K, (Column("c0", "int"),), "timestamp", "soft", "postgresql"),
    (Step("insert", rows=((1,), (2,))), Step("sync"), Step("open", rows=((3,),), picks=(0,)),
     Step("insert", rows=((4,),)), Step("sync"), Step("commit")))


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
@settings(max_examples=10, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@example(scenario=LATE_TIMESTAMP)
@example(scenario=LATE_DATE)
@example(scenario=LATE_ID)
@given(scenario=scenarios())
def test_any_table_and_history_replicates_exactly(dialect: str, scenario: Scenario, diff_pg: str, diff_mysql: str,
                                                  diff_warehouse: str) -> None:
    note(f"shape: {scenario.shape}")
    run(scenario, dialect, diff_pg if dialect == "postgresql" else diff_mysql, diff_warehouse)
