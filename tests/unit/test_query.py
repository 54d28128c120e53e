"""The pure read-statement builder (replicator/sources/query.py), rendered for each dialect without a server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from replicator.config import TableConfig
from replicator.reading import ReadRequest, TableSchema
from replicator.sources.query import bound, count_select, inline_text, max_watermark_select, read_select
from replicator.sources.typemap import column_spec
from replicator.types import ColumnSpec

# The dialects of the drivers sources connect with (sources/base.py normalize_url).
DIALECTS: dict[str, Dialect] = {
    name: sa.engine.make_url(url).get_dialect()()
    for name, url in (("postgresql", "postgresql+psycopg2://"), ("mysql", "mysql+pymysql://"),
                      ("mariadb", "mariadb+pymysql://"), ("sqlite", "sqlite://"))
}
# How each dialect quotes an identifier, and how it escapes its quote character inside one.
QUOTE = {"postgresql": ('"', '""'), "mysql": ("`", "``"), "mariadb": ("`", "``"), "sqlite": ('"', '""')}

ODD_KEY = 'we"ird`key'  # both quote characters, so each dialect must escape its own
SELECT = "select"  # a reserved word as a column name
LOWER = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
SECRET = "x'; DROP TABLE t; --"


def quoted(dialect: str, name: str) -> str:
    mark, escaped = QUOTE[dialect]
    return mark + name.replace(mark, escaped) + mark


def request(dialect: str, *, table: str = "My Schema.Order Lines", lower: Any = None,
            after_key: tuple[Any, ...] | None = None, include_null: bool = False,
            fallback: str | None = None) -> ReadRequest:
    kind = "sqlite" if dialect == "sqlite" else dialect
    types: dict[str, sa.types.TypeEngine[Any]] = {
        ODD_KEY: sa.Integer(), SELECT: sa.String(20), "Updated At": sa.DateTime(), "created": sa.DateTime(),
    }
    names = [ODD_KEY, SELECT, "Updated At"] + ([fallback] if fallback else [])
    specs = tuple(column_spec(kind, n, types[n]) for n in names)
    config = TableConfig(source="s", table=table, primary_key=[ODD_KEY, SELECT], watermark="Updated At",
                         on_null_watermark={"fallback": fallback} if fallback else ("include" if include_null else "fail"))
    return ReadRequest(table=config, schema=TableSchema(specs, tuple(names)), lower=lower,
                       include_null_watermark=include_null, after_key=after_key)


def sql(stmt: sa.Select[Any], dialect: str) -> tuple[str, dict[str, Any]]:
    compiled = stmt.compile(dialect=DIALECTS[dialect])
    return " ".join(str(compiled).split()), dict(compiled.params)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_name_is_quoted_by_the_dialect(dialect: str) -> None:
    text, _ = sql(read_select(request(dialect)), dialect)
    for name in (ODD_KEY, SELECT, "Updated At"):
        assert quoted(dialect, name) in text
    assert f"FROM {quoted(dialect, 'My Schema')}.{quoted(dialect, 'Order Lines')}" in text
    assert " WHERE " not in text  # no window: every row


@pytest.mark.parametrize("dialect", DIALECTS)
def test_values_are_bound_never_inlined(dialect: str) -> None:
    req = request(dialect, table="t", lower=LOWER, after_key=(7, SECRET))
    text, params = sql(read_select(req, after_key=(9, SECRET), limit=500, param=bound()), dialect)
    assert SECRET not in text and "2024" not in text and "500" not in text
    assert params["lower"] == LOWER
    assert (params["w0"], params["w1"], params["k0"], params["k1"]) == (7, SECRET, 9, SECRET)
    assert 500 in params.values()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_composite_keyset_chunk_compares_row_values_and_orders_by_the_key(dialect: str) -> None:
    text, _ = sql(read_select(request(dialect, table="t"), after_key=(1, "a"), limit=10), dialect)
    key, word = quoted(dialect, ODD_KEY), quoted(dialect, SELECT)
    marks = {"postgresql": ("%(k0)s", "%(k1)s"), "mysql": ("%s", "%s"), "mariadb": ("%s", "%s"), "sqlite": ("?", "?")}
    k0, k1 = marks[dialect]
    assert f"WHERE ({quoted(dialect, 't')}.{key}, {quoted(dialect, 't')}.{word}) > ({k0}, {k1})" in text
    assert f"ORDER BY {quoted(dialect, 't')}.{key}, {quoted(dialect, 't')}.{word} LIMIT " in text


def test_window_past_a_tie_key_with_fallback_and_nulls() -> None:
    req = request("postgresql", table="t", lower=LOWER, after_key=(3, "b"), fallback="created")
    text, params = sql(read_select(req), "postgresql")
    w, c = '"t"."Updated At"', '"t"."created"'
    past = '"t"."we""ird`key", "t"."select") > (%(w0)s, %(w1)s)'
    assert f'WHERE {w} >= %(lower)s AND ({w} > %(lower)s OR ({past})' in text
    assert f"OR {w} IS NULL AND {c} >= %(lower_fb)s" in text
    assert params["lower_fb"] == LOWER


def test_single_key_compares_directly_and_null_watermarks_are_included() -> None:
    base = request("mysql", table="t", lower=5, include_null=True)
    config = base.table.model_copy(update={"primary_key": [ODD_KEY]})
    req = ReadRequest(table=config, schema=base.schema, lower=5, include_null_watermark=True, after_key=(4,))
    text, _ = sql(read_select(req, after_key=(8,)), "mysql")
    assert "WHERE (`t`.`Updated At` >= %s AND (`t`.`Updated At` > %s OR `t`.`we\"ird``key` > %s)" in text
    assert "OR `t`.`Updated At` IS NULL) AND `t`.`we\"ird``key` > %s" in text
    assert "(`t`.`we" not in text  # one key: no row value


def test_as_text_and_cast_to_shape_the_selected_columns() -> None:
    req = request("mysql", table="t")
    text, _ = sql(read_select(req, as_text=lambda spec: spec.name == SELECT), "mysql")
    assert "CAST(`t`.`select` AS CHAR) AS `select`" in text
    assert "`t`.`we\"ird``key` AS `we\"ird``key`" in text


def test_fast_path_params_render_as_text_with_no_value_in_it() -> None:
    """What the fast paths do: each value becomes a session-variable reference, the rest is rendered."""
    seen: dict[str, Any] = {}

    def param(name: str, spec: ColumnSpec, value: Any) -> sa.ColumnElement[Any]:
        seen[name] = value
        return sa.literal_column(f"@replicator_{name}")

    req = request("mariadb", table="t", lower=LOWER)
    text = inline_text(read_select(req, after_key=(1, SECRET), limit=400, param=param), DIALECTS["mariadb"])
    assert "`t`.`Updated At` >= @replicator_lower" in text
    assert "> (@replicator_k0, @replicator_k1)" in text and text.rstrip().endswith("LIMIT 400")
    assert SECRET not in text and seen == {"lower": LOWER, "k0": 1, "k1": SECRET}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_probe_and_count_statements(dialect: str) -> None:
    req = request(dialect, fallback="created")
    text, _ = sql(max_watermark_select(req.table), dialect)
    table = f"{quoted(dialect, 'My Schema')}.{quoted(dialect, 'Order Lines')}"
    assert text == (f"SELECT max(coalesce({table}.{quoted(dialect, 'Updated At')}, {table}.{quoted(dialect, 'created')}))"
                    f" AS max_1 FROM {table}")
    text, params = sql(count_select(req.table, where_null="Updated At"), dialect)
    assert text == f"SELECT count(*) AS count_1 FROM {table} WHERE {table}.{quoted(dialect, 'Updated At')} IS NULL"
    assert params == {}
