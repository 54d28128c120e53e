"""Pure lake path builders and the partition value of rows."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from replicator.lake import paths
from replicator.lake.partitioning import partition_column

PLUS2 = dt.timezone(dt.timedelta(hours=2))
MINUS5 = dt.timezone(dt.timedelta(hours=-5))
RUN = "0123456789abcdef0123456789abcdef"


# --- partition_value ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "granularity", "expected"),
    [
        (dt.date(2026, 1, 2), "day", "2026-01-02"),
        (dt.datetime(2026, 1, 2, 23, 59, 59, 999999), "day", "2026-01-02"),
        # Aware values partition by their UTC date, whatever zone they arrive in.
        (dt.datetime(2026, 1, 1, 1, 0, tzinfo=PLUS2), "day", "2025-12-31"),
        (dt.datetime(2025, 12, 31, 20, 0, tzinfo=MINUS5), "day", "2026-01-01"),
        (dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone.utc), "day", "2026-01-01"),
        (dt.date(2026, 3, 9), "month", "2026-03"),
        (dt.datetime(2026, 1, 1, 1, 0, tzinfo=PLUS2), "month", "2025-12"),
        (dt.date(2026, 3, 9), "year", "2026"),
        (dt.datetime(2026, 1, 1, 1, 0, tzinfo=PLUS2), "year", "2025"),
        (dt.date(987, 6, 5), "day", "0987-06-05"),
        (dt.date(987, 6, 5), "year", "0987"),
    ],
)
def test_partition_value(value: dt.date, granularity: str, expected: str) -> None:
    assert paths.partition_value(value, granularity) == expected


def test_partition_value_defaults_to_day() -> None:
    assert paths.partition_value(dt.date(2026, 1, 2)) == "2026-01-02"


@pytest.mark.parametrize("granularity", ["day", "month", "year"])
def test_null_partitions_go_to_the_hive_default(granularity: str) -> None:
    assert paths.partition_value(None, granularity) == "__HIVE_DEFAULT_PARTITION__"
    assert paths.NULL_PARTITION == "__HIVE_DEFAULT_PARTITION__"


@pytest.mark.parametrize("value", [20260102, "2026-01-02", 1.5])
def test_partition_value_rejects_non_dates(value: object) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        paths.partition_value(value)


# --- file and folder paths ------------------------------------------------------------------------------


def test_data_file_is_relative_to_the_table_folder() -> None:
    """Manifests store relative paths, so a lake folder or prefix can be moved or copied."""
    relative = paths.data_file("dt=2026-01-02", 7, RUN, 3)
    assert relative == "dt=2026-01-02/part-00000007-01234567-00003.parquet"
    assert paths.in_table("/lake", "rides", relative) == "/lake/rides/dt=2026-01-02/part-00000007-01234567-00003.parquet"


def test_staging_file_lives_under_the_run_staging_folder() -> None:
    path = paths.in_table("/lake", "rides", paths.staging_file(RUN, "dt=2026-01-02", 7, 3))
    assert path == f"/lake/rides/_staging/{RUN}/dt=2026-01-02/part-00000007-01234567-00003.parquet"
    assert path.startswith(paths.staging_dir("/lake", "rides", RUN) + "/")


def test_staged_and_committed_files_share_their_name() -> None:
    staged = paths.staging_file(RUN, "dt=2026-01-02", 12, 4)
    final = paths.data_file("dt=2026-01-02", 12, RUN, 4)
    assert staged.rsplit("/", 1)[1] == final.rsplit("/", 1)[1]
    assert staged != final


def test_manifest_path_is_twenty_digits() -> None:
    assert paths.manifest_path("/lake", "rides", 42) == "/lake/rides/_manifests/00000000000000000042.json"
    assert paths.manifests_dir("/lake", "rides") == "/lake/rides/_manifests"


@pytest.mark.parametrize("seq", [0, 1, 42, 10**19, 2**63 - 1])
def test_manifest_seq_round_trips(seq: int) -> None:
    name = paths.manifest_path("bucket/lake", "rides", seq).rsplit("/", 1)[1]
    assert len(name) == len("00000000000000000000.json")
    assert paths.parse_manifest_seq(name) == seq


def test_manifest_names_sort_like_their_numbers() -> None:
    seqs = [1, 9, 10, 100, 99, 1000]
    names = [paths.manifest_path("/l", "t", s).rsplit("/", 1)[1] for s in seqs]
    assert [paths.parse_manifest_seq(n) for n in sorted(names)] == sorted(seqs)


@pytest.mark.parametrize(
    "name",
    [
        "42.json",
        "0000000000000000042.json",  # 19 digits
        "000000000000000000042.json",  # 21 digits
        "00000000000000000042.json.tmp",
        "00000000000000000042.JSON",
        "00000000000000000042",
        "0000000000000000004a.json",
        "-0000000000000000042.json",
        "lease.json",
        "",
    ],
)
def test_parse_manifest_seq_rejects_other_names(name: str) -> None:
    assert paths.parse_manifest_seq(name) is None


def test_lease_path() -> None:
    assert paths.lease_path("/lake", "rides") == "/lake/rides/_state/lease.json"


def test_bookkeeping_folders_start_with_underscore() -> None:
    # Hive-style readers skip folders starting with '_', so they never read staging or manifests as data.
    table_root = "/lake/rides/"
    bookkeeping = [
        paths.staging_dir("/lake", "rides", RUN),
        paths.manifests_dir("/lake", "rides"),
        paths.lease_path("/lake", "rides"),
    ]
    for path in bookkeeping:
        assert path.startswith(table_root)
        assert path[len(table_root) :].startswith("_"), path
    assert paths.in_table("/lake", "rides", paths.data_file("dt=x", 1, RUN, 1))[len(table_root) :] == f"dt=x/part-00000001-{RUN[:8]}-00001.parquet"


# --- join -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("/tmp/lake", "rides", "dt=x"), "/tmp/lake/rides/dt=x"),
        (("/tmp/lake/", "/rides/", "f.parquet"), "/tmp/lake/rides/f.parquet"),
        (("/", "rides"), "/rides"),
        (("bucket/prefix", "rides", "_manifests"), "bucket/prefix/rides/_manifests"),
        (("bucket", "rides"), "bucket/rides"),
        (("bucket/prefix/", "", "rides"), "bucket/prefix/rides"),
        ((), ""),
    ],
)
def test_join(parts: tuple[str, ...], expected: str) -> None:
    assert paths.join(*parts) == expected


def test_builders_work_for_bucket_roots() -> None:
    assert (
        paths.manifest_path("bucket/prefix", "rides", 1)
        == "bucket/prefix/rides/_manifests/00000000000000000001.json"
    )
    assert (
        paths.in_table("bucket", "rides", paths.data_file("dt=2026", 1, RUN, 1))
        == "bucket/rides/dt=2026/part-00000001-01234567-00001.parquet"
    )


# --- partition_column (writer) ----------------------------------------------------------------------------


def test_partition_column_utc_timestamps() -> None:
    column = pa.array(
        [dt.datetime(2025, 12, 31, 23, 59, 59, 999999), None, dt.datetime(2026, 1, 1)],
        type=pa.timestamp("us", tz="UTC"),
    )
    result = partition_column(column, "day")
    assert result.type == pa.string()
    assert result.to_pylist() == ["2025-12-31", "__HIVE_DEFAULT_PARTITION__", "2026-01-01"]


def test_partition_column_other_zone_uses_the_utc_date() -> None:
    # 2026-01-01T01:00+02:00 is 2025-12-31T23:00Z; the row belongs to the UTC date, like partition_value.
    value = dt.datetime(2026, 1, 1, 1, 0, tzinfo=PLUS2)
    column = pa.array([value], type=pa.timestamp("us", tz="Europe/Berlin"))
    assert partition_column(column, "day").to_pylist() == [paths.partition_value(value)] == ["2025-12-31"]


def test_partition_column_naive_timestamps() -> None:
    column = pa.array([dt.datetime(2026, 1, 2, 23, 59), None], type=pa.timestamp("us"))
    assert partition_column(column, "day").to_pylist() == ["2026-01-02", "__HIVE_DEFAULT_PARTITION__"]
    assert partition_column(column, "month").to_pylist() == ["2026-01", "__HIVE_DEFAULT_PARTITION__"]


def test_partition_column_dates() -> None:
    column = pa.array([dt.date(2026, 2, 28), None, dt.date(1999, 12, 31)], type=pa.date32())
    assert partition_column(column, "day").to_pylist() == [
        "2026-02-28",
        "__HIVE_DEFAULT_PARTITION__",
        "1999-12-31",
    ]
    assert partition_column(column, "year").to_pylist() == ["2026", "__HIVE_DEFAULT_PARTITION__", "1999"]


def test_partition_column_chunked_and_all_null() -> None:
    chunked = pa.chunked_array([[dt.date(2026, 1, 1)], [None]], type=pa.date32())
    assert partition_column(chunked, "month").to_pylist() == ["2026-01", "__HIVE_DEFAULT_PARTITION__"]
    nulls = pa.array([None, None], type=pa.timestamp("us", tz="UTC"))
    assert partition_column(nulls, "day").to_pylist() == ["__HIVE_DEFAULT_PARTITION__"] * 2


@pytest.mark.parametrize("granularity", ["day", "month", "year"])
def test_partition_column_agrees_with_partition_value(granularity: str) -> None:
    values = [
        dt.datetime(2026, 1, 1, 1, 0, tzinfo=PLUS2),
        dt.datetime(2025, 12, 31, 20, 0, tzinfo=MINUS5),
        dt.datetime(2024, 2, 29, 0, 0, tzinfo=dt.timezone.utc),
        None,
    ]
    column = pa.array(values, type=pa.timestamp("us", tz="UTC"))
    assert partition_column(column, granularity).to_pylist() == [
        paths.partition_value(v, granularity) for v in values
    ]
