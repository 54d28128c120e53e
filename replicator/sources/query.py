"""The statements a source is read with, built as SQLAlchemy Core: pure, no connection, no I/O.

The row path and both Arrow fast paths build their SELECT here and differ only in how a value reaches
it (`Param`): a bound parameter on the row path, a reference to a session variable on the fast paths,
whose drivers take no parameters. Every table and column name is a `quoted_name(quote=True)`, so the
dialect's preparer always quotes it: nothing read from YAML or the catalog is ever pasted into SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import quoted_name

from ..config import TableConfig
from ..reading import ReadRequest
from ..types import ColumnSpec

__all__ = ["Param", "bound", "count_select", "inline_text", "max_watermark_select", "q", "read_select",
           "table_clause"]

Param = Callable[[str, ColumnSpec, Any], sa.ColumnElement[Any]]
"""Turns (parameter name, the column compared with, value) into the SQL that stands for the value."""


def q(name: str) -> quoted_name:
    """Always quote: names from YAML are never trusted to be plain identifiers."""
    return quoted_name(name, quote=True)


def table_clause(table: TableConfig, columns: Sequence[str]) -> sa.TableClause:
    """The table (schema-qualified where configured) with `columns`, every name quoted."""
    return sa.table(q(table.table_name), *[sa.column(q(c)) for c in columns],
                    schema=q(table.schema_name) if table.schema_name else None)


def bound(adapt: Callable[[ColumnSpec, Any], Any] | None = None) -> Param:
    """Values as bound parameters, first passed through `adapt` (a dialect's bind_value hook)."""
    def param(name: str, spec: ColumnSpec, value: Any) -> sa.ColumnElement[Any]:
        return sa.bindparam(name, adapt(spec, value) if adapt is not None else value)
    return param


def _past(table: TableConfig, request: ReadRequest, key: tuple[Any, ...], prefix: str,
          param: Param, clause: sa.TableClause) -> sa.ColumnElement[bool]:
    """Rows after `key` in primary-key order: a row-value comparison, or a plain one for a single key."""
    pk = [clause.c[k] for k in table.primary_key]
    values = [param(f"{prefix}{i}", request.schema.column(k), v) for i, (k, v) in enumerate(zip(table.primary_key, key))]
    return sa.tuple_(*pk) > sa.tuple_(*values) if len(pk) > 1 else pk[0] > values[0]


def read_select(request: ReadRequest, after_key: tuple[Any, ...] | None = None, limit: int | None = None, *,
                param: Param | None = None, as_text: Callable[[ColumnSpec], bool] | None = None) -> sa.Select[Any]:
    """SELECT of the request's columns (raw driver values), its window and keyset position.

    The window: watermark >= lower (past `request.after_key` at exactly `lower`), or the fallback
    column >= lower where the watermark is NULL, or NULL watermarks if the request includes them.
    `after_key` and `limit` make it one keyset chunk, ordered by the key. `param` says how a value
    reaches SQL (by default a bound parameter); columns for which `as_text` is true are cast to text.
    """
    param = param or bound()
    table, schema = request.table, request.schema
    clause = table_clause(table, [c.name for c in schema.columns])
    cols = []
    for spec in schema.columns:
        col = clause.c[spec.name]
        cast_to = sa.CHAR() if as_text is not None and as_text(spec) else spec.cast_to
        raw = sa.cast(col, cast_to) if cast_to is not None else sa.type_coerce(col, sa.types.NullType())
        cols.append(raw.label(spec.name))
    stmt = sa.select(*cols).select_from(clause)
    if request.lower is not None and table.watermark:
        column, spec = clause.c[table.watermark], schema.column(table.watermark)
        lower = param("lower", spec, request.lower)
        cond: sa.ColumnElement[bool] = column >= lower
        if request.after_key is not None:
            cond = sa.and_(cond, sa.or_(column > lower, _past(table, request, request.after_key, "w", param, clause)))
        if table.null_fallback:
            # Written as an OR of two ranges so both columns' indexes stay usable.
            fallback = clause.c[table.null_fallback]
            cond = sa.or_(cond, sa.and_(column.is_(None), fallback >= param("lower_fb", spec, request.lower)))
        if request.include_null_watermark:
            cond = sa.or_(cond, column.is_(None))
        stmt = stmt.where(cond)
    if after_key is not None:
        stmt = stmt.where(_past(table, request, after_key, "k", param, clause))
    if limit is not None:
        stmt = stmt.order_by(*[clause.c[k] for k in table.primary_key]).limit(limit)
    return stmt


def max_watermark_select(table: TableConfig) -> sa.Select[Any]:
    """The highest effective watermark: the fallback column's value where the watermark is NULL."""
    assert table.watermark is not None
    clause = table_clause(table, [c for c in (table.watermark, table.null_fallback) if c])
    column = clause.c[table.watermark]
    value = sa.func.coalesce(column, clause.c[table.null_fallback]) if table.null_fallback else column
    return sa.select(sa.func.max(value)).select_from(clause)


def count_select(table: TableConfig, where_null: str | None = None) -> sa.Select[Any]:
    """COUNT(*) of the table, or of its rows where column `where_null` is NULL."""
    clause = table_clause(table, [where_null] if where_null else [])
    stmt = sa.select(sa.func.count()).select_from(clause)
    return stmt.where(clause.c[where_null].is_(None)) if where_null else stmt


def inline_text(stmt: sa.Select[Any], dialect: Dialect) -> str:
    """The statement as one text for a driver that takes no parameters (connectorx, ADBC's COPY).

    Only what the statement itself holds is rendered: the LIMIT and the names of session variables
    from the fast paths' `Param`, which carry every value; a statement built with bound values
    must not come here.
    """
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
