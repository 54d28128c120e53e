"""The one resource: a replicator project, opened in the step that runs (never at import time)."""

from __future__ import annotations

import dagster as dg

from replicator import Replicator


class ReplicatorResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Opens replicator.yml in the step's process.

    Connection secrets never pass through Dagster: replicator.yml refers to them as ${VAR}, read from the
    step's environment (set them like any EnvVar), so they appear in no run config, log or metadata.
    """

    project: str

    def open(self) -> Replicator:
        return Replicator.from_path(self.project)
