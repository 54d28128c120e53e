"""Pure watermark arithmetic: exact encoding, the read window, and the settle rule of each watermark kind."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "NOTHING_SETTLED", "Probe", "ReadWindow", "SettleClock", "decode", "effective", "encode", "is_settled",
    "next_watermark", "read_window", "settle_bound", "watermark_kind",
]

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


@dataclass(frozen=True)
class SettleClock:
    """What the source says about late commits, read before the read snapshot opens.

    `now` is the source's clock; `oldest_open` the start of the oldest transaction open in another
    session (None: none, or the role cannot see them). Both come from the same server clock.
    `concurrent_writers` is False for a source with one writer at a time (SQLite), where nothing
    invisible can ever commit below what a read saw.
    """

    now: dt.datetime
    oldest_open: dt.datetime | None = None
    margin: dt.timedelta = dt.timedelta(0)
    concurrent_writers: bool = True

    @property
    def open_since(self) -> dt.datetime:
        """No transaction that is still open started before this instant."""
        return self.now if self.oldest_open is None else min(self.now, self.oldest_open)

    @property
    def horizon(self) -> dt.datetime:
        """Every row still invisible will be stamped at or after this (the database clock, less the margin)."""
        return self.open_since - self.margin


@dataclass(frozen=True)
class Probe:
    """The highest integer watermark one snapshot saw, and the source clock read after that snapshot began."""

    at: dt.datetime
    max: int

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(timespec="microseconds"), "max": encode(self.max)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Probe:
        return cls(dt.datetime.fromisoformat(data["at"]), decode(data["max"]))


class _NothingSettled:
    """The settle bound when no watermark value is known to be final yet."""

    def __repr__(self) -> str:
        return "NOTHING_SETTLED"


NOTHING_SETTLED: Any = _NothingSettled()

# Civil dates run from UTC+14 to UTC-12: a date is over everywhere only 12 hours after it ends in UTC.
_LAST_DATE_LINE = dt.timedelta(hours=12)


def watermark_kind(arrow_type: pa.DataType) -> str:
    """timestamp, date or int: the three watermark kinds, each with its own settle rule."""
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_integer(arrow_type):
        return "int"
    raise TypeError(f"{arrow_type} is not a watermark type")


def settle_bound(kind: str, clock: SettleClock | None, probes: Sequence[Probe] = ()) -> Any:
    """The lowest watermark value that may still gain rows; every value below it is final.

    None: every value read is final (no clock, or one writer at a time). NOTHING_SETTLED: no value
    is known final yet.

    - timestamp: the settle horizon (rows still invisible are stamped at or after it).
    - date: the first date that has not ended in every time zone by the horizon (dates tie by
      design: a row changed later the same day carries the same value).
    - int: one past the highest `max` of a probe whose snapshot began before every transaction that
      is still open. A sequence value at or below that max was handed out before the snapshot, by a
      transaction that started before it and has therefore ended: it is visible to any later read.
    """
    if clock is None:
        return None
    if kind == "date":
        return (clock.horizon.astimezone(dt.timezone.utc) - _LAST_DATE_LINE).date()
    if not clock.concurrent_writers:
        return None
    if kind == "timestamp":
        return clock.horizon
    if kind == "int":
        settled = [p.max for p in probes if p.at < clock.open_since]
        return max(settled) + 1 if settled else NOTHING_SETTLED
    raise ValueError(f"unknown watermark kind {kind!r}")


def is_settled(value: Any, bound: Any) -> bool:
    """True when no row can still arrive with watermark `value` (so a read may resume past it by key)."""
    if bound is None:
        return True
    if bound is NOTHING_SETTLED or value is None:
        return False
    if isinstance(value, dt.datetime):
        return bool(value < _comparable(bound, value))
    return bool(value < bound)


def next_watermark(previous: Any, max_seen: Any, bound: Any) -> Any:
    """max(previous, min(bound, max_seen)): never past a value where an invisible row may still land.

    `bound` comes from `settle_bound` (None: no cap).
    """
    if max_seen is None:
        return previous
    if bound is NOTHING_SETTLED:
        return previous
    candidate = max_seen
    if bound is not None:
        candidate = min(max_seen, _comparable(bound, max_seen) if isinstance(max_seen, dt.datetime) else bound)
    if previous is None:
        return candidate
    return max(previous, candidate)


def effective(data: pa.Table, column: str, fallback: str | None = None) -> pa.ChunkedArray:
    """The watermark of each row: the column, or where it is NULL the fallback column's value."""
    values = data.column(column)
    return pc.coalesce(values, data.column(fallback)) if fallback else values
