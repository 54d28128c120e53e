"""The two DuckDB helpers every module that runs DuckDB SQL shares.

DuckDB has no SQL composition API, so identifiers are quoted here and nowhere else, and only
identifiers and integers ever enter the SQL text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

__all__ = ["ident", "to_arrow"]


def ident(name: str) -> str:
    """A quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def to_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """A query's result as an Arrow table (DuckDB 2 names it to_arrow_table, 1.x arrow)."""
    relation = con.sql(sql)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    result: pa.Table = fetch()
    return result
