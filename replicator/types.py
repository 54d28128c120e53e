"""Replicated columns and their Arrow schema; the lake's metadata keys.

How a reflected SQL type becomes a `ColumnSpec` is in `sources.typemap` (it needs SQLAlchemy, which
this module, imported by every command, does not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "UNBOUNDED_NUMERIC",
    "ColumnSpec",
    "Unrepresentable",
    "arrow_schema",
    "decimal_logical",
    "decimal_text_logical",
    "schema_fingerprint",
]

# PostgreSQL `numeric` without precision can hold any value; we store it as decimal128(38, 9) and
# refuse (loudly, via Arrow's rescale check) a value that does not fit rather than round it.
UNBOUNDED_NUMERIC = pa.decimal128(38, 9)
LOGICAL_KEY = b"replicator.logical"
SOURCE_TYPE_KEY = b"replicator.source_type"

Converter = Callable[[Sequence[Any]], Sequence[Any]]

# A decimal wider than 38 digits held as its exact text (a project that publishes to Iceberg): the field's
# logical type `decimal(p,s)` keeps what it is, for the PostgreSQL warehouse's numeric(p,s).
_DECIMAL_TEXT = "decimal"


def decimal_text_logical(precision: int, scale: int) -> str:
    return f"{_DECIMAL_TEXT}({precision},{scale})"


def decimal_logical(logical: str | None) -> tuple[int, int] | None:
    """The (precision, scale) of a wide decimal held as text (logical `decimal(p,s)`), else None."""
    if not logical or not logical.startswith(_DECIMAL_TEXT + "("):
        return None
    precision, scale = logical[len(_DECIMAL_TEXT) + 1:-1].split(",")
    return int(precision), int(scale)


@dataclass(frozen=True)
class ColumnSpec:
    """One replicated column: how to select it and what Arrow type it becomes."""

    name: str
    source_type: str
    arrow_type: pa.DataType
    nullable: bool = True
    logical: str | None = None
    cast_to: sa.types.TypeEngine[Any] | None = field(default=None, compare=False)
    convert: Converter | None = field(default=None, compare=False)
    sql_type: sa.types.TypeEngine[Any] | None = field(default=None, compare=False)

    def field(self) -> pa.Field:
        meta = {SOURCE_TYPE_KEY: self.source_type.encode()}
        if self.logical:
            meta[LOGICAL_KEY] = self.logical.encode()
        return pa.field(self.name, self.arrow_type, nullable=True, metadata=meta)

    def to_arrow(self, values: Sequence[Any]) -> pa.Array:
        if self.convert is not None:
            values = self.convert(values)
        try:
            return pa.array(values, type=self.arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            odd = next((v for v in values if isinstance(v, Unrepresentable)), None)
            if odd is None:
                raise
            raise ValueError(odd.reason) from exc


class Unrepresentable:
    """A source value a driver read that no Arrow value of its column holds; converting it stops the read."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unrepresentable({self.reason!r})"


def arrow_schema(columns: Sequence[ColumnSpec]) -> pa.Schema:
    return pa.schema([c.field() for c in columns])


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short stable text of names and Arrow types, recorded in each manifest."""
    return ";".join(f"{f.name}:{f.type}" for f in schema)
