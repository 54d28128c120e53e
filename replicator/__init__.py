"""replicator: incremental replication of OLTP tables into a partitioned Parquet lake, then a warehouse.

Nothing here imports Dagster; `dagster_defs` builds on this API. The runner and the results (and with
them pyarrow) are imported on first use, so what only reads the project (Dagster building its
definitions from 500 table files) does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import pyarrow as pa

    from .extract import ExtractResult
    from .load import LoadResult
    from .runner import Replicator, SyncResult, TableStatus

_LAZY = {"ExtractResult": ".extract", "LoadResult": ".load", "Replicator": ".runner", "SyncResult": ".runner",
         "TableStatus": ".runner"}

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "ExtractResult", "LakeError", "LakeUnavailable", "LoadResult", "LockError", "Project",
    "ProjectConfig", "Replicator", "ReplicatorError", "SchemaChangeError", "SourceError", "SourceUnavailable",
    "SyncResult", "TableConfig", "TableStatus", "WarehouseError", "WarehouseUnavailable", "load_project",
    "read_table",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def read_table(name: str, as_of: int | None = None, project: str | None = None) -> pa.Table:
    """The current state of table `name` from the lake (after batch or UTC time `as_of`), as an Arrow table."""
    from .runner import Replicator

    with Replicator.from_path(project) as rep:
        return rep.read_table(name, as_of=as_of)
