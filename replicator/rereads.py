"""Re-read rows the lake already holds: a row is new unless its key's latest lake version is equal to it.

A sync re-reads every watermark value that was not settled when the last one ran (and whatever
`lookback` asks for). Comparing whole rows, not (key, watermark), is what makes that safe for
watermarks that tie by design: a row changed twice on one day keeps its `updated_on` date, a row
changed twice in one second keeps a whole-second DATETIME, yet the second change differs in content.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["drop_unchanged"]

_LEFT, _RIGHT = "__replicator_left", "__replicator_right"


def drop_unchanged(data: pa.Table, deleted: pa.Array, known: pa.Table, key: Sequence[str]) -> tuple[pa.Table, pa.Array]:
    """`data` (with its rows' `_deleted` flags) without the rows equal to their key's version in `known`.

    `known` holds per key the latest lake version (source columns, `_deleted`). Equal means every
    column of `data` equal, NULL equal to NULL and NaN to NaN, and the same deletion flag; a column
    the lake's version lacks counts as NULL there. Anything not provably equal is kept.
    """
    if data.num_rows == 0 or known.num_rows == 0:
        return data, deleted
    left = pa.table({**{k: data.column(k) for k in key}, _LEFT: pa.array(range(data.num_rows), pa.int64())})
    try:
        right = pa.table({**{k: known.column(k).cast(data.schema.field(k).type) for k in key},
                          _RIGHT: pa.array(range(known.num_rows), pa.int64())})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return data, deleted  # the key's type changed: nothing can be proven equal
    pairs = left.join(right, keys=list(key), join_type="inner", use_threads=False)
    if pairs.num_rows == 0:
        return data, deleted
    ours = data.take(pairs.column(_LEFT))
    theirs = known.take(pairs.column(_RIGHT))
    same = _equal(pa.chunked_array([deleted]).take(pairs.column(_LEFT)), theirs.column("_deleted"))
    for name in data.column_names:
        if not pc.any(same).as_py():
            break
        if name in key:
            continue
        if name not in theirs.column_names:
            same = pc.and_(same, pc.is_null(ours.column(name)))
            continue
        same = pc.and_(same, _equal(ours.column(name), theirs.column(name)))
    unchanged = pairs.column(_LEFT).filter(same)
    if len(unchanged) == 0:
        return data, deleted
    keep = pc.invert(pc.is_in(pa.array(range(data.num_rows), pa.int64()), value_set=unchanged.combine_chunks()))
    return data.filter(keep), deleted.filter(keep)


def _equal(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    """Element-wise: both NULL, both NaN, or equal values (after bringing b to a's type)."""
    if b.type != a.type:
        try:
            b = b.cast(a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pa.chunked_array([pa.repeat(pa.scalar(False), len(a))])
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    try:
        values = pc.fill_null(pc.equal(a, b), False)
    except pa.ArrowNotImplementedError:
        # Lists, structs and maps have no comparison kernel: compare the few matched rows in Python.
        values = pa.chunked_array([pa.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist())], pa.bool_())])
    same = pc.or_(values, both_null)
    if pa.types.is_floating(a.type):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    return same
