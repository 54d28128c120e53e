"""The one resource: a replicator project, opened in the step that runs (never at import time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from replicator import Replicator


class ReplicatorResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Opens replicator.yml in the step's process.

    Connection secrets never pass through Dagster: replicator.yml refers to them as ${VAR}, read from the
    step's environment (set them like any EnvVar), so they appear in no run config, log or metadata.
    """

    project: str

    def open(self) -> Replicator:
        from replicator import Replicator  # in the step: building the definitions needs no runner

        return Replicator.from_path(self.project)
