"""Pure rules for following a source schema change in the lake: what evolves, what must stop."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from .errors import SchemaChangeError

__all__ = ["LAKE_COLUMNS", "describe_change", "evolve", "is_widening"]

LAKE_COLUMNS = ("_batch_id", "_loaded_at", "_deleted")

_SIGNED = [pa.int8(), pa.int16(), pa.int32(), pa.int64()]
_UNSIGNED = [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]


def is_widening(old: pa.DataType, new: pa.DataType) -> bool:
    """True when every value of `old` is exactly a value of `new` (so old files read as `new`)."""
    if old == new:
        return True
    if old in _SIGNED and new in _SIGNED:
        return _SIGNED.index(new) > _SIGNED.index(old)
    if old in _UNSIGNED and new in _UNSIGNED:
        return _UNSIGNED.index(new) > _UNSIGNED.index(old)
    if old in _UNSIGNED and new in _SIGNED:
        return _SIGNED.index(new) > _UNSIGNED.index(old)
    if pa.types.is_integer(old) and pa.types.is_decimal(new):
        digits = {1: 3, 2: 5, 4: 10, 8: 20}[old.bit_width // 8]
        return new.precision - new.scale >= digits
    if old == pa.float32() and new == pa.float64():
        return True
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        return new.scale >= old.scale and new.precision - new.scale >= old.precision - old.scale
    if pa.types.is_list(old) and pa.types.is_list(new):
        return is_widening(old.value_type, new.value_type)
    return False


def describe_change(old: pa.Schema, new: pa.Schema) -> list[str]:
    """One phrase per difference between two lake schemas (ignoring field metadata)."""
    before = {f.name: f.type for f in old}
    after = {f.name: f.type for f in new}
    changes = [f"{c} added ({t})" for c, t in after.items() if c not in before]
    changes += [f"{c} dropped" for c in before if c not in after]
    changes += [f"{c} {before[c]} -> {t}" for c, t in after.items() if c in before and before[c] != t]
    return changes


def evolve(name: str, old: pa.Schema, new: pa.Schema, *, policy: str, protected: Sequence[str]) -> pa.Schema:
    """The lake schema after this change: old columns in order (widened), then new ones.

    A column gone from the source stays (new batches carry NULL); a narrowing or incompatible type,
    or a lost key/watermark/partition column, raises SchemaChangeError naming the change and the resync.
    """
    changes = describe_change(old, new)
    if not changes:
        return old
    resync = f"resync with `replicator sync {name} --full-refresh`"
    if policy == "fail":
        raise SchemaChangeError(
            f"table {name!r}: the source schema changed ({'; '.join(changes)}) and on_schema_change is fail; "
            f"nothing was written. Update the YAML or {resync}"
        )
    after = {f.name: f for f in new}
    fields = []
    incompatible = []
    for f in old:
        if f.name in LAKE_COLUMNS:
            continue
        if f.name not in after:
            if f.name in protected:
                incompatible.append(f"{f.name} dropped (it is a key, watermark or partition column)")
            fields.append(f)
            continue
        g = after[f.name]
        if is_widening(f.type, g.type):
            fields.append(g)
        else:
            incompatible.append(f"{f.name} {f.type} -> {g.type}")
    if incompatible:
        raise SchemaChangeError(
            f"table {name!r}: incompatible source schema change ({'; '.join(incompatible)}); nothing was written "
            f"and the lake and warehouse are as they were. To continue, {resync}"
        )
    known = {f.name for f in fields}
    fields += [f.with_nullable(True) for f in new if f.name not in known and f.name not in LAKE_COLUMNS]
    lake = [f for f in old if f.name in LAKE_COLUMNS]
    return pa.schema(fields + lake)
