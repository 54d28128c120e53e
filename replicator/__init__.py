"""replicator: incremental replication of OLTP tables into a partitioned Parquet lake, then a warehouse.

Nothing here imports Dagster; `dagster_defs` builds on this API.
"""

from __future__ import annotations

from .catalog import Project, load_project
from .config import ProjectConfig, TableConfig
from .errors import (
    ConfigError,
    LakeError,
    LakeUnavailable,
    LockError,
    ReplicatorError,
    SchemaChangeError,
    SourceError,
    SourceUnavailable,
    WarehouseError,
    WarehouseUnavailable,
)
from .extract import ExtractResult
from .load import LoadResult
from .runner import Replicator, SyncResult, TableStatus

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "ExtractResult", "LakeError", "LakeUnavailable", "LoadResult", "LockError", "Project",
    "ProjectConfig", "Replicator", "ReplicatorError", "SchemaChangeError", "SourceError", "SourceUnavailable",
    "SyncResult", "TableConfig", "TableStatus", "WarehouseError", "WarehouseUnavailable", "load_project",
    "read_table",
]


def read_table(name: str, as_of: int | None = None, project: str | None = None):  # type: ignore[no-untyped-def]
    """The current state of table `name` from the lake (after batch or UTC time `as_of`), as an Arrow table."""
    with Replicator.from_path(project) as rep:
        return rep.read_table(name, as_of=as_of)
