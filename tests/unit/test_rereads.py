"""drop_unchanged: a re-read row is dropped only when it equals its key's latest lake version."""

from __future__ import annotations

import math
from decimal import Decimal

import pyarrow as pa

from replicator.rereads import drop_unchanged


def _flags(n: int, value: bool = False) -> pa.Array:
    return pa.array([value] * n)


def _known(rows: list[dict], schema: pa.Schema, deleted: list[bool] | None = None) -> pa.Table:
    table = pa.Table.from_pylist(rows, schema=schema)
    return table.append_column("_deleted", pa.array(deleted or [False] * len(rows)))


SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string()), ("on", pa.date32()), ("x", pa.float64())])


def test_same_key_and_watermark_but_other_content_is_kept() -> None:
    import datetime as dt

    today = dt.date(2026, 12, 1)
    known = _known([{"id": 3, "v": "orig", "on": today, "x": 1.0}], SCHEMA)
    data = pa.Table.from_pylist([{"id": 3, "v": "changed", "on": today, "x": 1.0},
                                 {"id": 4, "v": "same", "on": today, "x": None}], schema=SCHEMA)
    kept, flags = drop_unchanged(data, _flags(2), known, ["id"])
    assert kept.column("id").to_pylist() == [3, 4]
    assert len(flags) == 2


def test_identical_rows_are_dropped_nulls_and_nans_included() -> None:
    known = _known([{"id": 1, "v": None, "on": None, "x": math.nan}, {"id": 2, "v": "b", "on": None, "x": 2.5}], SCHEMA)
    data = pa.Table.from_pylist([{"id": 1, "v": None, "on": None, "x": math.nan},
                                 {"id": 2, "v": "b", "on": None, "x": 2.5},
                                 {"id": 5, "v": "new", "on": None, "x": 0.0}], schema=SCHEMA)
    kept, flags = drop_unchanged(data, _flags(3), known, ["id"])
    assert kept.column("id").to_pylist() == [5]
    assert flags.to_pylist() == [False]


def test_null_against_a_value_is_a_change() -> None:
    known = _known([{"id": 1, "v": "a", "on": None, "x": None}], SCHEMA)
    data = pa.Table.from_pylist([{"id": 1, "v": None, "on": None, "x": None}], schema=SCHEMA)
    assert drop_unchanged(data, _flags(1), known, ["id"])[0].num_rows == 1


def test_a_deletion_flag_differs_from_a_live_row() -> None:
    # The key's latest lake version is a deletion marker: the same values arriving live are a change.
    known = _known([{"id": 1, "v": "a", "on": None, "x": None}], SCHEMA, deleted=[True])
    data = pa.Table.from_pylist([{"id": 1, "v": "a", "on": None, "x": None}], schema=SCHEMA)
    assert drop_unchanged(data, _flags(1), known, ["id"])[0].num_rows == 1
    assert drop_unchanged(data, _flags(1, True), known, ["id"])[0].num_rows == 0


def test_a_column_the_lake_lacks_counts_as_null() -> None:
    old = pa.schema([("id", pa.int64()), ("v", pa.string())])
    known = _known([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], old)
    new = old.append(pa.field("added", pa.int32()))
    data = pa.Table.from_pylist([{"id": 1, "v": "a", "added": None}, {"id": 2, "v": "b", "added": 7}], schema=new)
    assert drop_unchanged(data, _flags(2), known, ["id"])[0].column("id").to_pylist() == [2]


def test_widened_types_and_composite_keys_compare_by_value() -> None:
    lake = pa.schema([("k1", pa.int32()), ("k2", pa.string()), ("amount", pa.decimal128(10, 2)), ("tags", pa.list_(pa.int32()))])
    known = _known([{"k1": 1, "k2": "a", "amount": Decimal("1.50"), "tags": [1, 2]},
                    {"k1": 1, "k2": "b", "amount": Decimal("2.00"), "tags": [3]}], lake)
    source = pa.schema([("k1", pa.int64()), ("k2", pa.string()), ("amount", pa.decimal128(14, 2)), ("tags", pa.list_(pa.int64()))])
    data = pa.Table.from_pylist([{"k1": 1, "k2": "a", "amount": Decimal("1.50"), "tags": [1, 2]},
                                 {"k1": 1, "k2": "b", "amount": Decimal("2.00"), "tags": [3, 4]},
                                 {"k1": 2, "k2": "a", "amount": Decimal("1.50"), "tags": [1, 2]}], schema=source)
    kept, _ = drop_unchanged(data, _flags(3), known, ["k1", "k2"])
    assert kept.select(["k1", "k2"]).to_pylist() == [{"k1": 1, "k2": "b"}, {"k1": 2, "k2": "a"}]


def test_nothing_known_keeps_everything() -> None:
    data = pa.Table.from_pylist([{"id": 1, "v": "a", "on": None, "x": None}], schema=SCHEMA)
    empty = _known([], SCHEMA)
    assert drop_unchanged(data, _flags(1), empty, ["id"])[0].num_rows == 1
