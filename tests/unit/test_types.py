"""Source column types -> Arrow types per dialect, and converters that produce exact Arrow values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from replicator.sources.typemap import column_spec
from replicator.types import LOGICAL_KEY, SOURCE_TYPE_KEY, arrow_schema, schema_fingerprint

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))


# --- PostgreSQL -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "arrow_type"),
    [
        (postgresql.SMALLINT(), pa.int16()),
        (postgresql.INTEGER(), pa.int32()),
        (postgresql.BIGINT(), pa.int64()),
        (postgresql.NUMERIC(12, 2), pa.decimal128(12, 2)),
        (postgresql.NUMERIC(38, 0), pa.decimal128(38, 0)),
        (postgresql.NUMERIC(50, 10), pa.decimal256(50, 10)),
        (postgresql.NUMERIC(), pa.decimal128(38, 9)),
        (postgresql.REAL(), pa.float32()),
        (postgresql.DOUBLE_PRECISION(), pa.float64()),
        (postgresql.TIMESTAMP(timezone=True), pa.timestamp("us", tz="UTC")),
        (postgresql.TIMESTAMP(), pa.timestamp("us")),
        (postgresql.DATE(), pa.date32()),
        (postgresql.TIME(), pa.time64("us")),
        (postgresql.BYTEA(), pa.binary()),
        (postgresql.BOOLEAN(), pa.bool_()),
        (postgresql.TEXT(), pa.string()),
        (postgresql.VARCHAR(20), pa.string()),
        (postgresql.ARRAY(postgresql.INTEGER()), pa.list_(pa.int32())),
        (postgresql.ARRAY(postgresql.TEXT()), pa.list_(pa.string())),
        (postgresql.ARRAY(postgresql.BIGINT()), pa.list_(pa.int64())),
    ],
    ids=repr,
)
def test_postgres_plain_types(type_: sa.types.TypeEngine[Any], arrow_type: pa.DataType) -> None:
    spec = column_spec("postgresql", "c", type_)
    assert spec.arrow_type == arrow_type
    assert spec.logical is None
    assert spec.cast_to is None  # read as the driver returns it


@pytest.mark.parametrize(
    ("type_", "logical"),
    [
        (postgresql.JSONB(), "json"),
        (postgresql.JSON(), "json"),
        (postgresql.UUID(), "uuid"),
        (postgresql.ENUM("pending", "done", name="ride_status"), "enum"),
    ],
    ids=repr,
)
def test_postgres_types_read_as_text(type_: sa.types.TypeEngine[Any], logical: str) -> None:
    spec = column_spec("postgresql", "c", type_)
    assert spec.arrow_type == pa.string()
    assert spec.logical == logical
    assert isinstance(spec.cast_to, sa.Text)  # selected as CAST(c AS TEXT): the exact text, not a dict


def test_postgres_array_of_json_is_read_as_text_array() -> None:
    spec = column_spec("postgresql", "tags", postgresql.ARRAY(postgresql.JSONB()))
    assert spec.arrow_type == pa.list_(pa.string())
    assert spec.logical == "json"
    assert isinstance(spec.cast_to, sa.ARRAY)
    assert isinstance(spec.cast_to.item_type, sa.Text)


def test_postgres_timestamptz_values_are_stored_as_utc_instants() -> None:
    spec = column_spec("postgresql", "updated_at", postgresql.TIMESTAMP(timezone=True))
    array = spec.to_arrow([dt.datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=PLUS2), None])
    assert array.type == pa.timestamp("us", tz="UTC")
    assert array.to_pylist() == [dt.datetime(2025, 12, 31, 23, 0, 0, 5, tzinfo=UTC), None]


def test_postgres_numeric_keeps_exact_digits() -> None:
    spec = column_spec("postgresql", "fare", postgresql.NUMERIC(50, 10))
    value = Decimal("1234567890123456789012345678901234567890.0123456789")
    assert spec.to_arrow([value, None]).to_pylist() == [value, None]


def test_postgres_bytea_from_memoryview() -> None:
    spec = column_spec("postgresql", "blob", postgresql.BYTEA())
    array = spec.to_arrow([memoryview(b"\x00\xffab"), None])
    assert array.type == pa.binary()
    assert array.to_pylist() == [b"\x00\xffab", None]


def test_postgres_integer_array_values() -> None:
    spec = column_spec("postgresql", "ids", postgresql.ARRAY(postgresql.INTEGER()))
    assert spec.to_arrow([[1, None, 3], [], None]).to_pylist() == [[1, None, 3], [], None]


# --- MySQL / MariaDB --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "arrow_type"),
    [
        (mysql.TINYINT(), pa.int8()),
        (mysql.TINYINT(unsigned=True), pa.uint8()),
        (mysql.SMALLINT(), pa.int16()),
        (mysql.SMALLINT(unsigned=True), pa.uint16()),
        (mysql.MEDIUMINT(), pa.int32()),
        (mysql.INTEGER(), pa.int32()),
        (mysql.INTEGER(unsigned=True), pa.uint32()),
        (mysql.BIGINT(), pa.int64()),
        (mysql.BIGINT(unsigned=True), pa.uint64()),
        (mysql.DECIMAL(12, 2), pa.decimal128(12, 2)),
        (mysql.DECIMAL(65, 30), pa.decimal256(65, 30)),
        (mysql.FLOAT(), pa.float32()),
        (mysql.DOUBLE(), pa.float64()),
        (mysql.DATETIME(fsp=6), pa.timestamp("us")),
        (mysql.TIMESTAMP(fsp=6), pa.timestamp("us", tz="UTC")),
        (mysql.DATE(), pa.date32()),
        (mysql.TIME(), pa.time64("us")),
        (mysql.BLOB(), pa.binary()),
        (mysql.VARBINARY(16), pa.binary()),
        (mysql.YEAR(), pa.int16()),
        (mysql.BIT(8), pa.uint64()),
        (mysql.VARCHAR(20), pa.string()),
    ],
    ids=repr,
)
def test_mysql_types(type_: sa.types.TypeEngine[Any], arrow_type: pa.DataType) -> None:
    spec = column_spec("mysql", "c", type_)
    assert spec.arrow_type == arrow_type
    assert spec.logical is None
    assert column_spec("mariadb", "c", type_).arrow_type == arrow_type


@pytest.mark.parametrize(
    ("type_", "logical"), [(mysql.JSON(), "json"), (mysql.ENUM("a", "b"), "enum")], ids=repr
)
def test_mysql_json_and_enum_are_strings(type_: sa.types.TypeEngine[Any], logical: str) -> None:
    spec = column_spec("mysql", "c", type_)
    assert spec.arrow_type == pa.string()
    assert spec.logical == logical


def test_mysql_integer_extremes_fit() -> None:
    assert column_spec("mysql", "c", mysql.BIGINT(unsigned=True)).to_arrow([2**64 - 1, 0]).to_pylist() == [
        2**64 - 1,
        0,
    ]
    assert column_spec("mysql", "c", mysql.TINYINT()).to_arrow([-128, 127]).to_pylist() == [-128, 127]


def test_mysql_time_from_timedelta() -> None:
    spec = column_spec("mysql", "starts", mysql.TIME(fsp=6))
    array = spec.to_arrow([dt.timedelta(hours=1, microseconds=5), dt.timedelta(0), None])
    assert array.type == pa.time64("us")
    assert array.to_pylist() == [dt.time(1, 0, 0, 5), dt.time(0, 0), None]


@pytest.mark.parametrize("value", [dt.timedelta(hours=25), dt.timedelta(hours=24), dt.timedelta(seconds=-1)])
def test_mysql_time_outside_one_day_is_refused(value: dt.timedelta) -> None:
    spec = column_spec("mysql", "starts", mysql.TIME())
    with pytest.raises(ValueError, match="TIME value"):
        spec.to_arrow([value])


def test_mysql_timestamp_naive_values_are_utc() -> None:
    # The session runs in UTC, so the driver's naive TIMESTAMP values are UTC wall times.
    spec = column_spec("mysql", "updated_at", mysql.TIMESTAMP(fsp=6))
    array = spec.to_arrow([dt.datetime(2026, 1, 2, 3, 4, 5, 123456), None])
    assert array.to_pylist() == [dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), None]


def test_mysql_datetime_stays_naive() -> None:
    spec = column_spec("mysql", "created", mysql.DATETIME(fsp=6))
    assert spec.to_arrow([dt.datetime(2026, 1, 2, 3, 4, 5, 6)]).to_pylist() == [
        dt.datetime(2026, 1, 2, 3, 4, 5, 6)
    ]


def test_mysql_bit_from_bytes() -> None:
    spec = column_spec("mysql", "flags", mysql.BIT(64))
    array = spec.to_arrow([b"\x05", b"\x01\x00", b"\xff" * 8, None])
    assert array.type == pa.uint64()
    assert array.to_pylist() == [5, 256, 2**64 - 1, None]


def test_mysql_json_values_become_compact_text() -> None:
    spec = column_spec("mysql", "doc", mysql.JSON())
    array = spec.to_arrow(['{"a": 1}', {"b": "é", "c": [1, 2]}, None])
    assert array.to_pylist() == ['{"a": 1}', '{"b":"é","c":[1,2]}', None]


def test_mysql_binary_from_bytearray() -> None:
    spec = column_spec("mysql", "raw", mysql.VARBINARY(4))
    assert spec.to_arrow([bytearray(b"\x00\x01"), None]).to_pylist() == [b"\x00\x01", None]


def test_mysql_decimal_values_are_exact() -> None:
    spec = column_spec("mysql", "fare", mysql.DECIMAL(12, 2))
    assert spec.to_arrow([Decimal("9999999999.99"), Decimal("-0.01")]).to_pylist() == [
        Decimal("9999999999.99"),
        Decimal("-0.01"),
    ]


# --- SQLite -----------------------------------------------------------------------------------------------


def test_sqlite_integer_is_int64() -> None:
    spec = column_spec("sqlite", "id", sqlite.INTEGER())
    array = spec.to_arrow([2**63 - 1, None, 0])
    assert array.type == pa.int64()
    assert array.to_pylist() == [2**63 - 1, None, 0]


def test_sqlite_numeric_from_float_and_int() -> None:
    spec = column_spec("sqlite", "fare", sqlite.NUMERIC(12, 2))
    array = spec.to_arrow([12.5, 3, "7.25", None])
    assert array.type == pa.decimal128(12, 2)
    values = array.to_pylist()
    assert values == [Decimal("12.50"), Decimal("3.00"), Decimal("7.25"), None]
    assert str(values[0]) == "12.50"


def test_sqlite_datetime_from_text() -> None:
    spec = column_spec("sqlite", "updated_at", sqlite.DATETIME())
    array = spec.to_arrow(["2026-01-02 03:04:05.123456", "2026-01-02T03:04:05", None])
    assert array.type == pa.timestamp("us")
    assert array.to_pylist() == [
        dt.datetime(2026, 1, 2, 3, 4, 5, 123456),
        dt.datetime(2026, 1, 2, 3, 4, 5),
        None,
    ]


def test_sqlite_date_and_time_from_text() -> None:
    assert column_spec("sqlite", "d", sqlite.DATE()).to_arrow(["2026-01-02", None]).to_pylist() == [
        dt.date(2026, 1, 2),
        None,
    ]
    assert column_spec("sqlite", "t", sqlite.TIME()).to_arrow(["03:04:05.000006"]).to_pylist() == [
        dt.time(3, 4, 5, 6)
    ]


def test_sqlite_text_column_stringifies_what_affinity_stored() -> None:
    spec = column_spec("sqlite", "name", sqlite.TEXT())
    assert spec.to_arrow(["x", 5, None]).to_pylist() == ["x", "5", None]


# --- schema metadata ------------------------------------------------------------------------------------


def test_arrow_schema_records_source_type_and_logical_type() -> None:
    specs = [
        column_spec("postgresql", "id", postgresql.BIGINT(), nullable=False),
        column_spec("postgresql", "doc", postgresql.JSONB()),
    ]
    schema = arrow_schema(specs)
    assert schema.names == ["id", "doc"]
    assert schema.field("id").metadata == {SOURCE_TYPE_KEY: b"BIGINT"}
    assert schema.field("doc").metadata == {SOURCE_TYPE_KEY: b"JSONB", LOGICAL_KEY: b"json"}
    assert schema_fingerprint(schema) == "id:int64;doc:string"
