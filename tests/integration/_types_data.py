"""Source tables of tests/integration/test_types.py: one column per type, the rows, and the Arrow map."""

from __future__ import annotations

import pyarrow as pa

# --- PostgreSQL --------------------------------------------------------------------------------------

# (column, DDL type, Arrow type the documented map gives it)
PG_COLUMNS: list[tuple[str, str, pa.DataType]] = [
    ("id", "bigint PRIMARY KEY", pa.int64()),
    ("c_smallint", "smallint", pa.int16()),
    ("c_int", "integer", pa.int32()),
    ("c_bigint", "bigint", pa.int64()),
    ("c_num_12_2", "numeric(12,2)", pa.decimal128(12, 2)),
    ("c_num_38_10", "numeric(38,10)", pa.decimal128(38, 10)),
    ("c_numeric", "numeric", pa.decimal128(38, 9)),
    ("c_real", "real", pa.float32()),
    ("c_double", "double precision", pa.float64()),
    ("c_bool", "boolean", pa.bool_()),
    ("c_text", "text", pa.string()),
    ("c_varchar", "varchar(10)", pa.string()),
    ("c_char", "char(3)", pa.string()),
    ("c_date", "date", pa.date32()),
    ("c_time", "time(6)", pa.time64("us")),
    ("c_ts", "timestamp(6)", pa.timestamp("us")),
    ("c_tstz", "timestamptz(6)", pa.timestamp("us", tz="UTC")),
    ("c_json", "json", pa.string()),
    ("c_jsonb", "jsonb", pa.string()),
    ("c_uuid", "uuid", pa.string()),
    ("c_bytea", "bytea", pa.binary()),
    ("c_enum", "mood", pa.string()),
    ("c_int_arr", "integer[]", pa.list_(pa.int32())),
    ("c_text_arr", "text[]", pa.list_(pa.string())),
    ("updated_at", "timestamptz NOT NULL", pa.timestamp("us", tz="UTC")),
]
PG_NAMES = [c for c, _, _ in PG_COLUMNS]

# Kinds that need normalizing before values from different engines compare.
PG_KINDS = {
    "c_real": "float32", "c_tstz": "instant", "updated_at": "instant", "c_json": "json", "c_jsonb": "json",
    "c_uuid": "uuid", "c_bytea": "bytes",
}
# The source values as documented: char(n) by PostgreSQL's own char -> text rule (trailing blanks dropped).
PG_SOURCE_SQL = {"c_char": "c_char::text AS c_char"}
# Columns with a declared scale: the value's exponent must survive, not only its numeric value.
PG_SCALED = {"c_num_12_2": -2, "c_num_38_10": -10}

# What the DuckDB warehouse declares for the columns whose type carries the most.
PG_DUCKDB_TYPES = {
    "c_num_12_2": "DECIMAL(12,2)", "c_num_38_10": "DECIMAL(38,10)", "c_numeric": "DECIMAL(38,9)", "c_real": "FLOAT",
    "c_time": "TIME", "c_ts": "TIMESTAMP", "c_tstz": "TIMESTAMP WITH TIME ZONE", "c_json": "JSON", "c_jsonb": "JSON",
    "c_uuid": "UUID", "c_bytea": "BLOB", "c_int_arr": "INTEGER[]", "c_text_arr": "VARCHAR[]",
}

PG_DDL = [
    "CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh')",
    "CREATE TABLE all_types (" + ", ".join(f"{c} {t}" for c, t, _ in PG_COLUMNS) + ")",
]

# One literal per column, in PG_COLUMNS order.
PG_ROWS: list[list[str]] = [
    [  # maxima, unicode, a non-UTC offset, nested JSON
        "1", "32767", "2147483647", "9223372036854775807", "1234567890.12", "12345678901234567890.0123456789",
        "123456789.123456789", "1.5", "0.1", "true", "'Zürich 🚕'", "'abcdefghij'", "'ab'", "'2024-02-29'",
        "'23:59:59.999999'", "'2024-02-29 12:34:56.789012'", "'2024-03-10 01:02:03.123456+05:30'",
        """'{"b": [1, 2.5, "x"],  "a": null}'""", """'{"k": "Zürich 🚕", "n": 12345678901234567890}'""",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'\\x00ff10'::bytea", "'happy'", "'{1,2,3}'",
        "ARRAY['a', NULL, 'b']", "'2024-01-01 00:00:01+00'",
    ],
    [  # minima, empty strings (not NULL), empty bytea/arrays, pre-epoch instants
        "2", "-32768", "-2147483648", "-9223372036854775808", "-0.01", "-0.0000000001", "-0.000000001",
        "0.1", "1e308", "false", "''", "''", "''", "'1970-01-01'", "'00:00:00'",
        "'1969-12-31 23:59:59.999999'", "'1999-12-31 23:59:59.999999-08:00'", "'[]'", "'{}'",
        "'00000000-0000-0000-0000-000000000000'", "'\\x'::bytea", "'sad'", "'{}'", "'{}'",
        "'2024-01-01 00:00:02+00'",
    ],
    # every nullable column NULL
    ["3", *["NULL"] * (len(PG_COLUMNS) - 2), "'2024-01-01 00:00:03+00'"],
    [  # characters COPY and array literals must escape; infinities; a NULL array element
        "4", "0", "0", "0", "0", "0", "0.5", "'-Infinity'", "'Infinity'", "true",
        "E'tab\\there\\nnew line \"q\" back\\\\slash'", "'a\"b\\\\c'", "'x y'", "'2099-12-31'",
        "'12:00:00.000001'", "'2000-01-01 00:00:00.000001'", "'2000-01-01 00:00:00+00'",
        """'{"s": "tab\\t \\u00fc 🚕 \\"q\\""}'""", """'[1, {"a": [true, false, null]}]'""",
        "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'\\xff00'::bytea", "'meh'", "'{NULL,-1}'",
        """ARRAY['a,b', 'c"d', 'e\\f', '{g}', 'NULL', '', ' sp ']""", "'2024-01-01 00:00:04+00'",
    ],
]

PG_INSERT = "INSERT INTO all_types VALUES " + ", ".join("(" + ", ".join(r) + ")" for r in PG_ROWS)


# --- MariaDB -----------------------------------------------------------------------------------------

MY_COLUMNS: list[tuple[str, str, pa.DataType]] = [
    ("id", "bigint PRIMARY KEY", pa.int64()),
    ("c_tinyint", "tinyint", pa.int8()),
    ("c_usmallint", "smallint unsigned", pa.uint16()),
    ("c_mediumint", "mediumint", pa.int32()),
    ("c_int", "int", pa.int32()),
    ("c_ubigint", "bigint unsigned", pa.uint64()),
    ("c_dec_12_2", "decimal(12,2)", pa.decimal128(12, 2)),
    ("c_dec_30_10", "decimal(30,10)", pa.decimal128(30, 10)),
    ("c_float", "float", pa.float32()),
    ("c_double", "double", pa.float64()),
    ("c_bool", "tinyint(1)", pa.int8()),
    ("c_varchar", "varchar(20)", pa.string()),
    ("c_text", "text", pa.string()),
    ("c_date", "date", pa.date32()),
    ("c_time", "time(6)", pa.time64("us")),
    ("c_datetime", "datetime(6)", pa.timestamp("us")),
    ("c_ts", "timestamp(6) NULL DEFAULT NULL", pa.timestamp("us", tz="UTC")),
    ("c_json", "json", pa.string()),
    ("c_blob", "blob", pa.binary()),
    ("c_varbinary", "varbinary(16)", pa.binary()),
    ("c_enum", "enum('a','b')", pa.string()),
    ("c_year", "year", pa.int16()),
    ("updated_at", "datetime(6) NOT NULL", pa.timestamp("us")),
]
MY_NAMES = [c for c, _, _ in MY_COLUMNS]
MY_KINDS = {"c_float": "float32", "c_time": "time", "c_ts": "utc", "c_json": "json", "c_blob": "bytes",
            "c_varbinary": "bytes"}
MY_SCALED = {"c_dec_12_2": -2, "c_dec_30_10": -10}

MY_DUCKDB_TYPES = {
    "c_tinyint": "TINYINT", "c_usmallint": "USMALLINT", "c_ubigint": "UBIGINT", "c_dec_30_10": "DECIMAL(30,10)",
    "c_float": "FLOAT", "c_time": "TIME", "c_datetime": "TIMESTAMP", "c_ts": "TIMESTAMP WITH TIME ZONE",
    "c_blob": "BLOB", "c_varbinary": "BLOB", "c_year": "SMALLINT",
}

MY_DDL = "CREATE TABLE all_types (" + ", ".join(f"`{c}` {t}" for c, t, _ in MY_COLUMNS) + ") CHARACTER SET utf8mb4"

MY_ROWS: list[list[str]] = [
    [
        "1", "-128", "65535", "-8388608", "2147483647", "18446744073709551615", "9999999999.99",
        "12345678901234567890.0123456789", "1.5", "0.1", "1", "'Zürich 🚕'", "'Zürich 🚕 text'",
        "'2024-02-29'", "'23:59:59.999999'", "'2024-02-29 12:34:56.789012'", "'2024-01-01 10:00:00.123456'",
        """'{"a": [1, 2], "b": "ü 🚕"}'""", "x'00FF10'", "x'00FF'", "'a'", "2155", "'2024-01-01 00:00:01'",
    ],
    [
        "2", "127", "0", "8388607", "-2147483648", "0", "-0.01", "-0.0000000001", "0.1", "1e308", "0",
        "''", "''", "'1000-01-01'", "'00:00:00'", "'1000-01-01 00:00:00.000001'", "'1970-01-01 02:00:01'",
        "'[]'", "''", "''", "'b'", "1901", "'2024-01-01 00:00:02'",
    ],
    ["3", *["NULL"] * (len(MY_COLUMNS) - 2), "'2024-01-01 00:00:03'"],
    [
        "4", "0", "1", "0", "0", "9223372036854775808", "0.00", "0.5", "-2.5", "-1e-300", "1",
        "'tab\\there\\nq\"b\\\\s'", "'line\\nbreak'", "'2099-12-31'", "'12:00:00.000001'",
        "'2038-01-19 03:14:07.999999'", "'2038-01-19 05:14:07.999999'", """'{"n": null, "x": 1.25}'""",
        "x'FF00'", "x'00'", "'b'", "2000", "'2024-01-01 00:00:04'",
    ],
]

# TIMESTAMP literals above are written in this session zone: the stored instants are two hours earlier.
MY_INSERT_ZONE = "+02:00"
MY_INSERT = "INSERT INTO all_types VALUES " + ", ".join("(" + ", ".join(r) + ")" for r in MY_ROWS)
