"""Source readers, one module per dialect, chosen by a registry keyed on the SQLAlchemy dialect name."""

from __future__ import annotations

from ..config import SourceConfig
from ..errors import ConfigError
from .base import ReadRequest, SourceReader, SqlSource, TableSchema, make_engine, normalize_url
from .mysql import MySQLSource
from .postgres import PostgresSource
from .sqlite import SQLiteSource

__all__ = ["READERS", "ReadRequest", "SourceReader", "SqlSource", "TableSchema", "open_source"]

READERS: dict[str, type[SqlSource]] = {
    "postgresql": PostgresSource,
    "mysql": MySQLSource,
    "mariadb": MySQLSource,
    "sqlite": SQLiteSource,
}


def open_source(name: str, config: SourceConfig) -> SqlSource:
    """The reader for `config.url`'s dialect; the engine connects lazily."""
    engine = make_engine(config.url, f"sources.{name}")
    reader = READERS.get(engine.dialect.name)
    if reader is None:
        raise ConfigError(
            f"sources.{name}.url: dialect {engine.dialect.name!r} is not supported; use postgresql://, mysql+pymysql:// or sqlite:///"
        )
    return reader(name, config, engine)


__all__ += ["make_engine", "normalize_url"]
