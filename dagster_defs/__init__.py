"""The Dagster code location: `dagster dev -m dagster_defs`, or the `dg` project (`defs/replicator/defs.yaml`).

`defs` is Dagster's lazy definitions (`@dg.definitions`): the code server calls it and builds from
$REPLICATOR_PROJECT or ./replicator.yml, so importing the package (the Component, the translator; `dg`
scanning it for Components) reads no project file.
"""

from __future__ import annotations

import os

import dagster as dg

from .component import ReplicatorComponent
from .definitions import build_definitions, collector_paused
from .translator import DagsterReplicatorTranslator, ReplicatorTranslatorData

__all__ = ["DagsterReplicatorTranslator", "ReplicatorComponent", "ReplicatorTranslatorData", "build_definitions", "defs"]


@dg.definitions
def defs() -> dg.Definitions:
    with collector_paused():
        definitions = build_definitions(os.environ.get("REPLICATOR_PROJECT"))
        # What the code server asks of it first (Dagster caches it on the object), while the collector rests.
        definitions.resolve_asset_graph()
        return definitions
