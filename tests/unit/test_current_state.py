"""The current-state rule in Arrow, on a table of cases whose expected states are written out by hand.

The same cases run against real DuckDB and PostgreSQL (the rule's SQL, and each warehouse's load) in
tests/integration/test_current_state_engines.py, so every engine is held to the same expectations.
Column names are awkward on purpose (a space, mixed case, reserved words): the SQL must quote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from replicator.current_state import CurrentStateRule
from replicator.lake.reader import latest_per_key

KEY, GROUP, WATERMARK, FALLBACK, VALUE = "Ride Id", "group", "select", "Created At", "v"

TYPES = {KEY: pa.int64(), GROUP: pa.string(), WATERMARK: pa.int64(), FALLBACK: pa.int64(), VALUE: pa.string(),
         "_batch_id": pa.int64(), "_deleted": pa.bool_()}


@dataclass(frozen=True)
class Case:
    id: str
    rule: CurrentStateRule
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    expected: frozenset[tuple[Any, ...]]  # the current state as (key columns..., v)

    def table(self) -> pa.Table:
        schema = pa.schema([(c, TYPES[c]) for c in self.columns])
        return pa.Table.from_pylist([dict(zip(self.columns, r)) for r in self.rows], schema=schema)

    @property
    def output(self) -> list[str]:
        return [*self.rule.key, VALUE]


def _rule(key: Sequence[str] = (KEY,), watermark: str | None = WATERMARK,
          fallback: str | None = None) -> CurrentStateRule:
    return CurrentStateRule(key=tuple(key), watermark=watermark, fallback=fallback)


_COLUMNS = (KEY, WATERMARK, VALUE, "_batch_id", "_deleted")

CASES = [
    Case("two versions in one batch", _rule(), _COLUMNS, (
        (1, 10, "first", 1, False), (1, 20, "second", 1, False), (1, 15, "between", 1, False),
        (2, 30, "only", 1, False),
    ), frozenset({(1, "second"), (2, "only")})),
    Case("later batch wins over a higher watermark", _rule(), _COLUMNS, (
        (1, 50, "old", 1, False), (1, 10, "new", 2, False),
        (2, 90, "batch 1", 1, False), (2, 80, "batch 3", 3, False), (2, 99, "batch 2", 2, False),
    ), frozenset({(1, "new"), (2, "batch 3")})),
    Case("NULL watermark ranks lowest", _rule(), _COLUMNS, (
        (1, None, "null", 1, False), (1, 5, "five", 1, False),
        (2, None, "only null", 1, False),
        (3, 1, "older batch", 1, False), (3, None, "later batch, null", 2, False),
    ), frozenset({(1, "five"), (2, "only null"), (3, "later batch, null")})),
    Case("deleted latest row drops the key", _rule(), _COLUMNS, (
        (1, 10, "alive", 1, False), (1, 20, "gone", 2, True),
        (2, 10, "was deleted", 1, True), (2, 20, "back", 2, False),
        (3, 30, "marker", 1, True), (3, 10, "older version", 1, False),
        (4, 40, "later marker", 1, False), (4, 5, "marker, lower watermark", 2, True),
        (5, 5, "NULL _deleted is not deleted", 1, None),
    ), frozenset({(2, "back"), (5, "NULL _deleted is not deleted")})),
    Case("batch without _deleted", _rule(), (KEY, WATERMARK, VALUE, "_batch_id"), (
        (1, 1, "a", 1), (1, 2, "b", 1), (2, 7, "c", 1),
    ), frozenset({(1, "b"), (2, "c")})),
    Case("composite key", _rule(key=(KEY, GROUP)), (KEY, GROUP, WATERMARK, VALUE, "_batch_id", "_deleted"), (
        (1, "a", 10, "1a old", 1, False), (1, "a", 20, "1a new", 1, False),
        (1, "b", 5, "1b", 1, False),
        (2, "a", 1, "2a", 1, False), (2, "a", 2, "2a deleted", 2, True),
        (2, "b", 9, "2b", 2, False),
    ), frozenset({(1, "a", "1a new"), (1, "b", "1b"), (2, "b", "2b")})),
    Case("fallback stands in for a NULL watermark", _rule(fallback=FALLBACK),
         (KEY, WATERMARK, FALLBACK, VALUE, "_batch_id", "_deleted"), (
        (1, None, 30, "fallback 30", 1, False), (1, 20, 99, "watermark 20", 1, False),
        (2, None, None, "both NULL", 1, False), (2, None, 1, "fallback 1", 1, False),
    ), frozenset({(1, "fallback 30"), (2, "fallback 1")})),
    Case("no watermark: the batch alone orders", _rule(watermark=None), (KEY, VALUE, "_batch_id", "_deleted"), (
        (1, "batch 1", 1, False), (1, "batch 2", 2, False), (2, "batch 1 only", 1, False),
        (3, "batch 1", 1, False), (3, "batch 2 marker", 2, True),
    ), frozenset({(1, "batch 2"), (2, "batch 1 only")})),
]


def state(table: pa.Table, columns: Sequence[str]) -> frozenset[tuple[Any, ...]]:
    """The rows of `table` as a set of tuples of `columns`; no key may appear twice."""
    rows = list(zip(*(table.column(c).to_pylist() for c in columns)))
    assert len({r[:-1] for r in rows}) == len(rows), f"a key appears twice: {rows}"
    return frozenset(rows)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_arrow_current_state(case: Case) -> None:
    assert state(case.rule.current(case.table()), case.output) == case.expected


@pytest.mark.parametrize("case", [c for c in CASES if c.rule.fallback is None], ids=lambda c: c.id)
def test_the_lake_reader_applies_the_rule(case: Case) -> None:
    current = latest_per_key(case.table(), case.rule.key, case.rule.watermark)
    assert state(current, case.output) == case.expected


def test_latest_keeps_deletion_markers() -> None:
    """Re-reads compare with a key's latest version, marker or not (see rereads.drop_unchanged)."""
    case = next(c for c in CASES if c.id == "deleted latest row drops the key")
    latest = case.rule.latest(case.table())
    assert state(latest, case.output) == {(1, "gone"), (2, "back"), (3, "marker"),
                                          (4, "marker, lower watermark"), (5, "NULL _deleted is not deleted")}


def test_an_empty_table_has_an_empty_state() -> None:
    empty = pa.schema([(c, TYPES[c]) for c in _COLUMNS]).empty_table()
    assert _rule().current(empty).num_rows == 0


def test_a_rule_needs_a_key_and_a_fallback_needs_a_watermark() -> None:
    with pytest.raises(ValueError, match="key"):
        CurrentStateRule(key=())
    with pytest.raises(ValueError, match="fallback"):
        CurrentStateRule(key=(KEY,), fallback=FALLBACK)


def test_sql_quotes_every_name_it_renders() -> None:
    """Only the dialect's quoting brings a name into the SQL text."""
    def quote(name: str) -> str:
        return f"<{name}>"

    rule = _rule(key=(KEY, GROUP), fallback=FALLBACK)
    assert rule.order_sql(quote) == "<_batch_id> DESC, COALESCE(<select>, <Created At>) DESC NULLS LAST"
    assert rule.live_sql(quote) == "NOT COALESCE(<_deleted>, FALSE)"
    assert rule.default_columns_sql([KEY, VALUE], quote) == ["FALSE AS <_deleted>"]
    assert rule.default_columns_sql([KEY, "_deleted"], quote) == []
    assert rule.postgres_latest_sql("<t>", "<v>", quote) == (
        "SELECT DISTINCT ON (<Ride Id>, <group>) <v> FROM <t> ORDER BY <Ride Id>, <group>, "
        "<_batch_id> DESC, COALESCE(<select>, <Created At>) DESC NULLS LAST")
