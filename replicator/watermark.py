"""Pure watermark arithmetic: exact encoding, the read window, and the settle-horizon cap."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ReadWindow", "decode", "effective", "encode", "next_watermark", "read_window"]

Watermark = dt.datetime | dt.date | int | Decimal


def encode(value: Any) -> dict[str, str] | None:
    """An exact JSON form: integers as text (beyond 2**53), timestamps with microseconds and offset."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a boolean is not a watermark")
    if isinstance(value, int):
        return {"kind": "int", "value": str(value)}
    if isinstance(value, Decimal):
        return {"kind": "decimal", "value": str(value)}
    if isinstance(value, dt.datetime):
        return {"kind": "timestamp", "value": value.isoformat(timespec="microseconds")}
    if isinstance(value, dt.date):
        return {"kind": "date", "value": value.isoformat()}
    if isinstance(value, str):
        return {"kind": "str", "value": value}
    if isinstance(value, (bytes, bytearray)):
        return {"kind": "bytes", "value": bytes(value).hex()}
    raise TypeError(f"cannot use a {type(value).__name__} as a watermark")


def decode(data: dict[str, str] | None) -> Any:
    if data is None:
        return None
    kind, value = data["kind"], data["value"]
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "str":
        return value
    if kind == "bytes":
        return bytes.fromhex(value)
    raise ValueError(f"unknown watermark kind {kind!r}")


@dataclass(frozen=True)
class ReadWindow:
    """Rows with watermark >= lower (closed) are read; lower None means the whole table."""

    previous: Any
    lower: Any


def read_window(previous: Any, lookback: dt.timedelta | int) -> ReadWindow:
    """The window of one run: from the stored watermark minus `lookback` (closed, so ties are re-read)."""
    if previous is None:
        return ReadWindow(None, None)
    if isinstance(previous, dt.datetime) or (isinstance(previous, dt.date) and not isinstance(previous, dt.datetime)):
        delta = lookback if isinstance(lookback, dt.timedelta) else dt.timedelta(0)
        if isinstance(previous, dt.datetime):
            return ReadWindow(previous, previous - delta)
        return ReadWindow(previous, previous - dt.timedelta(days=delta.days + (1 if delta.seconds else 0)))
    step = lookback if isinstance(lookback, int) else 0
    return ReadWindow(previous, previous - step)


def _comparable(horizon: dt.datetime, like: dt.datetime) -> dt.datetime:
    """Express the horizon in the frame of the column: aware UTC, or naive UTC for naive columns."""
    aware = horizon if horizon.tzinfo else horizon.replace(tzinfo=dt.timezone.utc)
    if like.tzinfo is None:
        return aware.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return aware


def next_watermark(previous: Any, max_seen: Any, horizon: dt.datetime | None) -> Any:
    """max(previous, min(horizon, max_seen)): never past a point where an invisible row may still land.

    The horizon caps only timestamp watermarks; integer and date watermarks rely on `lookback`.
    """
    if max_seen is None:
        return previous
    candidate = max_seen
    if horizon is not None and isinstance(max_seen, dt.datetime):
        candidate = min(max_seen, _comparable(horizon, max_seen))
    if previous is None:
        return candidate
    return max(previous, candidate)


def effective(data: pa.Table, column: str, fallback: str | None = None) -> pa.ChunkedArray:
    """The watermark of each row: the column, or where it is NULL the fallback column's value."""
    values = data.column(column)
    return pc.coalesce(values, data.column(fallback)) if fallback else values
