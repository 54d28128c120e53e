"""What both Arrow-native readers share: conforming batches to the exact schema, translating their errors."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ReplicatorError, SourceError, SourceUnavailable, mask_secrets

__all__ = ["conform", "reader_error"]


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast what the driver delivered to the table's exact schema (decimal text is checked, never rounded)."""
    arrays = []
    for array, field in zip(batch.columns, schema):
        if isinstance(array.type, pa.ExtensionType):
            array = array.storage
        if array.type != field.type:
            try:
                array = pc.cast(array, field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SourceError(f"column {field.name!r}: a value does not fit {field.type}: {exc}") from exc
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def reader_error(source: str, exc: BaseException, transient: Sequence[str]) -> ReplicatorError:
    """One line, secrets masked; retriable when the driver's text names a transient failure."""
    text = mask_secrets(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    cls = SourceUnavailable if any(m in text for m in transient) else SourceError
    return cls(f"source {source!r}: cannot read: {text}")
