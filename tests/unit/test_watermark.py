"""Watermark arithmetic: exact JSON encoding, the read window, and the settle-horizon cap."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from replicator.watermark import (
    NOTHING_SETTLED,
    Probe,
    ReadWindow,
    SettleClock,
    decode,
    encode,
    is_settled,
    next_watermark,
    read_window,
    settle_bound,
    watermark_kind,
)

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        dt.datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=PLUS2),
        dt.datetime(2026, 1, 2, 3, 4, 5, 999999),
        dt.datetime(2026, 1, 2, 3, 4, 5),
        2**63 - 1,
        -(2**63),
        0,
        dt.date(2026, 2, 28),
        Decimal("12345678901234567890.123456789"),
        Decimal("-0.00"),
        Decimal("1E+3"),
    ],
    ids=repr,
)
def test_encode_decode_round_trip_is_exact(value: Any) -> None:
    # Through real JSON text, as the manifest stores it.
    restored = decode(json.loads(json.dumps(encode(value))))
    assert restored == value
    assert type(restored) is type(value)
    if isinstance(value, dt.datetime):
        assert restored.utcoffset() == value.utcoffset()  # naive stays naive, +02:00 stays +02:00
        assert restored.microsecond == value.microsecond
    if isinstance(value, Decimal):
        assert str(restored) == str(value)  # same digits and exponent, not just equal


def test_encode_keeps_big_integers_as_text() -> None:
    assert encode(2**63 - 1) == {"kind": "int", "value": "9223372036854775807"}


def test_encode_timestamp_always_has_microseconds_and_offset() -> None:
    assert encode(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == {
        "kind": "timestamp",
        "value": "2026-01-02T03:04:05.000000+00:00",
    }


def test_none_encodes_and_decodes_as_none() -> None:
    assert encode(None) is None
    assert decode(None) is None


@pytest.mark.parametrize("value", [True, 1.5, [1]])
def test_encode_rejects_non_watermark_values(value: Any) -> None:
    with pytest.raises(TypeError):
        encode(value)


@pytest.mark.parametrize("value", ["2026-01-01", "Zürich 🚕", "", b"\x00\xff"])
def test_key_values_round_trip_exactly(value: Any) -> None:
    """Text and binary primary-key values (the keyset cursor) are stored exactly, not parsed."""
    assert decode(encode(value)) == value
    assert type(decode(encode(value))) is type(value)


def test_decode_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'float'"):
        decode({"kind": "float", "value": "1.5"})


# --- read_window ------------------------------------------------------------------------------------------


def test_first_run_reads_the_whole_table() -> None:
    assert read_window(None, dt.timedelta(minutes=5)) == ReadWindow(previous=None, lower=None)
    assert read_window(None, 10) == ReadWindow(previous=None, lower=None)


@pytest.mark.parametrize("tz", [UTC, None])
def test_timestamp_window_starts_lookback_before_previous(tz: dt.tzinfo | None) -> None:
    previous = dt.datetime(2026, 1, 1, 0, 2, 0, 7, tzinfo=tz)
    window = read_window(previous, dt.timedelta(minutes=5))
    assert window.previous == previous
    assert window.lower == dt.datetime(2025, 12, 31, 23, 57, 0, 7, tzinfo=tz)


def test_zero_lookback_rereads_ties_at_previous() -> None:
    previous = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert read_window(previous, dt.timedelta(0)).lower == previous


def test_integer_window_subtracts_integer_lookback() -> None:
    window = read_window(2**63 - 1, 1000)
    assert window.previous == 2**63 - 1
    assert window.lower == 2**63 - 1 - 1000
    assert type(window.lower) is int


def test_integer_watermark_ignores_a_duration_lookback() -> None:
    assert read_window(500, dt.timedelta(minutes=5)).lower == 500


def test_timestamp_watermark_ignores_an_integer_lookback() -> None:
    previous = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert read_window(previous, 1000).lower == previous


def test_date_window_rounds_lookback_up_to_whole_days() -> None:
    assert read_window(dt.date(2026, 3, 1), dt.timedelta(hours=1)).lower == dt.date(2026, 2, 28)
    assert read_window(dt.date(2026, 3, 1), dt.timedelta(days=2)).lower == dt.date(2026, 2, 27)
    assert read_window(dt.date(2026, 3, 1), dt.timedelta(0)).lower == dt.date(2026, 3, 1)


# --- next_watermark -------------------------------------------------------------------------------------

HORIZON = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_aware_timestamps_are_capped_at_the_horizon() -> None:
    previous = dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    max_seen = dt.datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert next_watermark(previous, max_seen, HORIZON) == HORIZON


def test_aware_timestamps_below_the_horizon_advance_to_max_seen() -> None:
    previous = dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    max_seen = dt.datetime(2026, 1, 1, 11, 59, 59, 999999, tzinfo=UTC)
    assert next_watermark(previous, max_seen, HORIZON) == max_seen


def test_aware_column_in_another_zone_is_compared_as_an_instant() -> None:
    max_seen = dt.datetime(2026, 1, 1, 13, 30, tzinfo=PLUS2)  # 11:30 UTC, before the horizon
    assert next_watermark(None, max_seen, HORIZON) == max_seen
    later = dt.datetime(2026, 1, 1, 14, 30, tzinfo=PLUS2)  # 12:30 UTC, after it
    assert next_watermark(None, later, HORIZON) == HORIZON


def test_naive_columns_compare_against_the_horizon_as_naive_utc() -> None:
    previous = dt.datetime(2026, 1, 1, 10, 0)
    result = next_watermark(previous, dt.datetime(2026, 1, 1, 13, 0), HORIZON)
    assert result == dt.datetime(2026, 1, 1, 12, 0)
    assert result.tzinfo is None


def test_naive_column_with_a_non_utc_horizon_uses_its_utc_time() -> None:
    horizon = dt.datetime(2026, 1, 1, 14, 0, tzinfo=PLUS2)  # 12:00 UTC
    result = next_watermark(None, dt.datetime(2026, 1, 1, 13, 0), horizon)
    assert result == dt.datetime(2026, 1, 1, 12, 0)
    assert result.tzinfo is None


def test_naive_column_below_the_horizon_keeps_max_seen() -> None:
    max_seen = dt.datetime(2026, 1, 1, 11, 0)
    assert next_watermark(None, max_seen, HORIZON) == max_seen


def test_watermark_never_goes_below_previous() -> None:
    # Clock skew: the horizon is earlier than what a previous run already stored.
    previous = dt.datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    max_seen = dt.datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert next_watermark(previous, max_seen, HORIZON) == previous
    # A lookback re-read whose rows are all older than previous.
    assert next_watermark(previous, dt.datetime(2026, 1, 1, 11, 0, tzinfo=UTC), None) == previous
    assert next_watermark(100, 90, None) == 100


def test_integer_and_date_bounds_cap_like_the_horizon() -> None:
    assert next_watermark(10, 2**63 - 1, 501) == 501
    assert next_watermark(None, 42, 501) == 42
    assert next_watermark(None, dt.date(2027, 1, 1), dt.date(2026, 12, 1)) == dt.date(2026, 12, 1)
    assert next_watermark(None, dt.date(2026, 11, 30), dt.date(2026, 12, 1)) == dt.date(2026, 11, 30)


def test_nothing_settled_keeps_previous_and_never_settles() -> None:
    assert next_watermark(10, 2**63 - 1, NOTHING_SETTLED) == 10
    assert next_watermark(None, 42, NOTHING_SETTLED) is None
    assert not is_settled(42, NOTHING_SETTLED)


# --- settle rules, one per watermark kind -----------------------------------------------------------

NOW = dt.datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
MARGIN = dt.timedelta(seconds=1)


def test_timestamp_bound_is_the_horizon_of_the_oldest_open_transaction() -> None:
    idle = SettleClock(now=NOW, margin=MARGIN)
    assert settle_bound("timestamp", idle) == NOW - MARGIN
    started = NOW - dt.timedelta(minutes=10)
    busy = SettleClock(now=NOW, oldest_open=started, margin=MARGIN)
    assert settle_bound("timestamp", busy) == started - MARGIN
    assert is_settled(started - dt.timedelta(seconds=2), settle_bound("timestamp", busy))
    assert not is_settled(started, settle_bound("timestamp", busy))
    # A value equal to the bound may still gain rows: only strictly earlier values are settled.
    assert not is_settled(started - MARGIN, settle_bound("timestamp", busy))


@pytest.mark.parametrize(
    ("horizon", "first_unsettled"),
    [
        # 13:00 UTC: 1 December has ended in UTC-12 (at 12:00 UTC on 2 December); 2 December has not.
        (dt.datetime(2026, 12, 2, 13, 0, 1, tzinfo=UTC), dt.date(2026, 12, 2)),
        # 11:00 UTC: it is still 1 December in UTC-12, so 1 December is not settled.
        (dt.datetime(2026, 12, 2, 11, 0, 1, tzinfo=UTC), dt.date(2026, 12, 1)),
        (dt.datetime(2026, 12, 2, 12, 0, 1, tzinfo=UTC), dt.date(2026, 12, 2)),
        (dt.datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC), dt.date(2026, 12, 1)),
        # A horizon in another zone is the same instant.
        (dt.datetime(2026, 12, 2, 15, 0, 1, tzinfo=PLUS2), dt.date(2026, 12, 2)),
    ],
)
def test_a_date_settles_once_it_has_ended_in_every_time_zone(horizon: dt.datetime, first_unsettled: dt.date) -> None:
    clock = SettleClock(now=horizon + MARGIN, margin=MARGIN)
    bound = settle_bound("date", clock)
    assert bound == first_unsettled
    assert is_settled(first_unsettled - dt.timedelta(days=1), bound)
    assert not is_settled(first_unsettled, bound)


def test_todays_date_is_never_settled_so_same_day_changes_are_re_read() -> None:
    bound = settle_bound("date", SettleClock(now=NOW, margin=MARGIN))
    assert next_watermark(dt.date(2026, 12, 1), NOW.date(), bound) == NOW.date()
    assert not is_settled(NOW.date(), bound)


def test_an_open_transaction_holds_a_date_back() -> None:
    clock = SettleClock(now=NOW, oldest_open=dt.datetime(2026, 11, 28, 23, 0, tzinfo=UTC), margin=MARGIN)
    assert settle_bound("date", clock) == dt.date(2026, 11, 28)


def test_dates_settle_even_with_one_writer() -> None:
    clock = SettleClock(now=NOW, margin=MARGIN, concurrent_writers=False)
    assert settle_bound("date", clock) == dt.date(2026, 12, 2)
    assert settle_bound("timestamp", clock) is None
    assert settle_bound("int", clock, [Probe(NOW, 5)]) is None


def _probe(minutes_ago: float, top: int) -> Probe:
    return Probe(NOW - dt.timedelta(minutes=minutes_ago), top)


def test_integer_probe_settles_when_no_open_transaction_began_before_it() -> None:
    clock = SettleClock(now=NOW, margin=MARGIN)
    assert settle_bound("int", clock, [_probe(0.001, 102)]) == 103
    assert is_settled(102, 103)
    assert not is_settled(103, 103)


def test_integer_probe_taken_while_an_older_transaction_is_open_settles_nothing() -> None:
    # A transaction took id 101 ten minutes ago and is still open; a probe saw 102 since.
    clock = SettleClock(now=NOW, oldest_open=NOW - dt.timedelta(minutes=10), margin=MARGIN)
    assert settle_bound("int", clock, [_probe(1, 102)]) is NOTHING_SETTLED
    assert next_watermark(None, 102, NOTHING_SETTLED) is None


def test_integer_bound_uses_the_highest_probe_older_than_every_open_transaction() -> None:
    clock = SettleClock(now=NOW, oldest_open=NOW - dt.timedelta(minutes=5), margin=MARGIN)
    probes = [_probe(20, 50), _probe(6, 90), _probe(4, 120)]
    assert settle_bound("int", clock, probes) == 91
    # The margin is for clock skew between machines; probe and transaction start share one clock.
    at_the_edge = SettleClock(now=NOW, oldest_open=NOW - dt.timedelta(minutes=6), margin=dt.timedelta(minutes=30))
    assert settle_bound("int", at_the_edge, probes) == 51


def test_no_clock_means_no_cap() -> None:
    for kind in ("timestamp", "date", "int"):
        assert settle_bound(kind, None) is None
    assert is_settled(dt.date(2030, 1, 1), None)


def test_probe_round_trips_through_json() -> None:
    probe = Probe(dt.datetime(2026, 12, 2, 13, 0, 0, 123456, tzinfo=UTC), 2**63 - 1)
    assert Probe.from_json(json.loads(json.dumps(probe.to_json()))) == probe


def test_watermark_kinds() -> None:
    import pyarrow as pa

    assert watermark_kind(pa.timestamp("us", tz="UTC")) == "timestamp"
    assert watermark_kind(pa.timestamp("us")) == "timestamp"
    assert watermark_kind(pa.date32()) == "date"
    assert watermark_kind(pa.uint64()) == "int"
    with pytest.raises(TypeError):
        watermark_kind(pa.string())


def test_no_rows_seen_keeps_previous() -> None:
    previous = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert next_watermark(previous, None, HORIZON) == previous
    assert next_watermark(7, None, None) == 7
    assert next_watermark(None, None, HORIZON) is None


def test_without_horizon_timestamps_advance_to_max_seen() -> None:
    max_seen = dt.datetime(2030, 1, 1, tzinfo=UTC)
    assert next_watermark(None, max_seen, None) == max_seen
