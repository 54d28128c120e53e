"""Warehouse loaders: DuckDB (embedded default) and PostgreSQL, chosen by the URL's scheme."""

from __future__ import annotations

from urllib.parse import urlparse

from ..config import WarehouseConfig
from ..errors import ConfigError
from .base import LEDGER_TABLE, Loaded, LoadSpec, WarehouseLoader

__all__ = ["LEDGER_TABLE", "Loaded", "LoadSpec", "WarehouseLoader", "open_warehouse"]


def open_warehouse(config: WarehouseConfig) -> WarehouseLoader:
    """duckdb:///path.duckdb (or duckdb:///:memory:) and postgresql://... URLs."""
    url = config.url
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme == "duckdb":
        path = url[len("duckdb:///"):] if url.startswith("duckdb:///") else url[len("duckdb://"):]
        from .duckdb import DuckDBWarehouse

        return DuckDBWarehouse(path or ":memory:", config.schema_, config.memory_limit)
    if scheme in ("postgresql", "postgres"):
        dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        from .postgres import PostgresWarehouse

        return PostgresWarehouse(dsn, config.schema_)
    raise ConfigError(
        f"warehouse.url: unknown scheme {scheme!r}; use duckdb:///path/warehouse.duckdb or postgresql://user@host/db"
    )
