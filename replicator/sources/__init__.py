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


def open_source(name: str, config: SourceConfig, *, iceberg_types: bool = False) -> SqlSource:
    """The reader for `config.url`'s dialect; the engine connects lazily.

    `iceberg_types`: columns get the Arrow types every Iceberg reader accepts (`typemap.iceberg_compatible`),
    for a project that publishes its lake to Iceberg (registered files must already have them).
    """
    engine = make_engine(config.url, f"sources.{name}")
    reader = READERS.get(engine.dialect.name)
    if reader is None:
        raise ConfigError(
            f"sources.{name}.url: dialect {engine.dialect.name!r} is not supported; use postgresql://, mysql+pymysql:// or sqlite:///"
        )
    source = reader(name, config, engine)
    source.iceberg_types = iceberg_types
    return source


__all__ += ["make_engine", "normalize_url"]
