"""`replicator validate`: every table file against its live source, one line per problem."""

from __future__ import annotations

from .errors import ConfigError, ReplicatorError, SourceRefused
from .runner import Replicator

__all__ = ["validate_live"]


def validate_live(rep: Replicator) -> list[str]:
    """Check lake, Iceberg catalog and warehouse, then each table against its source (table, key, watermark, columns)."""
    problems: list[str] = []
    for check in (lambda: rep.lake, lambda: rep.warehouse):
        try:
            check()
        except ConfigError as exc:
            problems += [f"{rep.project.path}: {line}" for line in exc.problems]
    if rep.iceberg is not None:
        try:
            rep.iceberg.catalog  # noqa: B018 - opening it is the check (and creates its tables on first use)
        except ReplicatorError as exc:
            key = "catalog_uri" if rep.iceberg.config.uri else "catalog"
            problems.append(f"{rep.project.path}: lake.iceberg.{key}: {exc}")
    unreachable: dict[str, str] = {}
    for name, table in rep.project.tables.items():
        file = rep.project.table_files[name]
        if table.source in unreachable:
            continue
        try:
            rep.source(table.source).describe(table)
        except ConfigError as exc:
            problems += [f"{rep.project.path}: {line}" for line in exc.problems]
            unreachable[table.source] = str(exc)
        except ReplicatorError as exc:
            # The source itself is unreachable or refused us: one line for the source, not one per table.
            if exc.retriable or isinstance(exc, SourceRefused):
                unreachable[table.source] = str(exc)
                problems.append(f"{rep.project.path}: sources.{table.source}: {exc}")
            else:
                problems.append(f"{file}: {exc}")
    return problems
