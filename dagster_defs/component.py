"""`ReplicatorComponent`: a replicator project as a Dagster Component (`dg` finds it; `defs.yaml` configures it).

```yaml
type: dagster_defs.ReplicatorComponent
attributes:
  project: ../../replicator.yml          # relative to this defs.yaml
  automation: schedules                  # or conditions (AutomationCondition.on_cron per asset)
  translation:                           # applied to every source, lake and warehouse asset spec
    group_name: "replicated_{{ data.table.source }}"
    key_prefix: demo
    tags: {team: data}
```
In `translation`, `data` is the `ReplicatorTranslatorData` (`data.layer`, `data.name`, `data.table`) and
`spec` the default spec. For more, subclass the Component and override `get_asset_spec`, as with
dagster-dlt's and dagster-sling's Components.
"""

# No `from __future__ import annotations`: the Resolvable model is built from these hints at load time.

from dataclasses import dataclass
from typing import Annotated, Literal

import dagster as dg
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver

from .definitions import build_definitions
from .translator import DagsterReplicatorTranslator, ReplicatorTranslatorData


@dataclass
class ReplicatorComponent(dg.Component, dg.Resolvable):
    """Every table of a replicator project as source, lake and warehouse assets, with checks, jobs and sensors."""

    project: str = "replicator.yml"
    automation: Literal["schedules", "conditions"] = "schedules"
    city_models: bool | None = None
    sensor_interval_seconds: int = 60
    translation: Annotated[
        TranslationFn[ReplicatorTranslatorData],
        TranslationFnResolver[ReplicatorTranslatorData](lambda data: {"data": data}),
    ] | None = None

    def get_asset_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        """The spec of one table layer; override in a subclass (call super()) to change keys, groups, kinds."""
        return DagsterReplicatorTranslator().get_asset_spec(data)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        project = context.path / self.project if not self.project.startswith("/") else self.project
        return build_definitions(str(project), translator=_ComponentTranslator(self), automation=self.automation,
                                 city_models=self.city_models, sensor_interval_s=self.sensor_interval_seconds)


class _ComponentTranslator(DagsterReplicatorTranslator):
    """The Component's `get_asset_spec`, then its YAML `translation`."""

    def __init__(self, component: ReplicatorComponent) -> None:
        self.component = component

    def get_asset_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        spec = self.component.get_asset_spec(data)
        return self.component.translation(spec, data) if self.component.translation else spec
