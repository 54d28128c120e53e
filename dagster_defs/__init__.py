"""The Dagster code location: `dagster dev -m dagster_defs`, or the `dg` project (`defs/replicator/defs.yaml`).

`defs` is built on first access (Dagster's module loader asks for it), from $REPLICATOR_PROJECT or
./replicator.yml, so importing the Component or the translator reads no project file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .component import ReplicatorComponent
from .definitions import build_definitions
from .translator import DagsterReplicatorTranslator, ReplicatorTranslatorData

if TYPE_CHECKING:
    import dagster as dg

    defs: dg.Definitions

__all__ = ["DagsterReplicatorTranslator", "ReplicatorComponent", "ReplicatorTranslatorData", "build_definitions", "defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        value = build_definitions(os.environ.get("REPLICATOR_PROJECT"))
        globals()["defs"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "defs"})
