"""`defs`: every table of replicator.yml as Dagster assets, checks, jobs, schedules and a sensor.

Building reads only the YAML files: no lake, source or warehouse is touched at import (column types
arrive with each materialization's `dagster/column_schema`).
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import dagster as dg

from replicator import Project, load_project

from .assets import lake_assets, warehouse_assets
from .observation import batches_sensor, source_observations
from .resources import ReplicatorResource
from .schedules import observe_job, on_cron, sync_jobs
from .translator import DagsterReplicatorTranslator, ReplicatorTranslatorData

Automation = Literal["schedules", "conditions"]


def _has_demo_shape(project: Project) -> bool:
    return {"rides", "cities"} <= set(project.tables)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic collector off while the definitions are built and resolved, restored as it was.

    Building allocates some 100,000 objects and leaves no garbage cycles worth collecting, but after
    `import dagster` each full collection walks its ~180,000 objects: for 500 tables, building and
    resolving the asset graph triggered two, 0.12 s of 0.78 s (bench/defs_build.py).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_definitions(project_path: str | None = None, *, translator: DagsterReplicatorTranslator | None = None,
                      automation: Automation = "schedules", city_models: bool | None = None,
                      sensor_interval_s: int = 60) -> dg.Definitions:
    """Definitions for the project at `project_path` (else $REPLICATOR_PROJECT, else ./replicator.yml).

    `automation`: "schedules" (cron schedules per cron expression, the default) or "conditions"
    (`AutomationCondition.on_cron` on each asset, evaluated by Dagster's automation sensor).
    `city_models`: add the demo's per-city feature and model assets (default: when the project has
    `rides` and `cities` tables, as the demo does).
    """
    with collector_paused():
        return _build(project_path, translator, automation, city_models, sensor_interval_s)


def _build(project_path: str | None, translator: DagsterReplicatorTranslator | None, automation: Automation,
           city_models: bool | None, sensor_interval_s: int) -> dg.Definitions:
    project = load_project(project_path, require_env=False)
    translator = translator or DagsterReplicatorTranslator()
    defaults = project.config.defaults
    by_source: dict[str, dict[str, dict[str, dg.AssetSpec]]] = defaultdict(lambda: defaultdict(dict))
    sensed: dict[str, tuple[dg.AssetKey, dg.AssetKey, ReplicatorTranslatorData]] = {}
    keys_by_cron: dict[str, list[dg.AssetKey]] = defaultdict(list)
    warehouse_tables: dict[str, str] = {}
    for name, table in project.tables.items():
        data = {layer: ReplicatorTranslatorData(layer, name, table, project) for layer in ("source", "lake", "warehouse")}
        source = translator.get_asset_spec(data["source"])
        lake = translator.get_asset_spec(data["lake"])
        warehouse = translator.get_asset_spec(data["warehouse"])
        # One copy of each spec with all the multi-assets need (a copy costs ~50 us; 500 tables, 4 copies each).
        cron = on_cron(data["lake"].cron, [source.key]) if automation == "conditions" else None
        lake = lake.replace_attributes(deps=[*lake.deps, source.key], skippable=True,
                                       automation_condition=lake.automation_condition if cron is None else cron)
        warehouse = warehouse.replace_attributes(
            deps=[*warehouse.deps, lake.key], skippable=True,
            automation_condition=warehouse.automation_condition if cron is None else cron)
        for layer, spec in (("source", source), ("lake", lake), ("warehouse", warehouse)):
            by_source[table.source][layer][name] = spec
        sensed[name] = (lake.key, warehouse.key, data["warehouse"])
        keys_by_cron[data["lake"].cron] += [lake.key, warehouse.key]
        warehouse_tables[name] = data["warehouse"].warehouse_table

    assets: list[dg.AssetsDefinition] = []
    for source_name, layers in by_source.items():
        assets.append(source_observations(source_name, layers["source"], project.tables))
        assets.append(lake_assets(source_name, layers["lake"], iceberg=project.config.lake.iceberg is not None))
        assets.append(warehouse_assets(source_name, layers["warehouse"], warehouse_tables))
    if city_models if city_models is not None else _has_demo_shape(project):
        from .cities import city_assets  # here: a project without the demo's tables never builds them

        assets += city_assets()
    lake_keys = {n: s for layers in by_source.values() for n, s in
                 ((n, spec.key) for n, spec in layers["lake"].items())}
    warehouse_keys = {n: s for layers in by_source.values() for n, s in
                      ((n, spec.key) for n, spec in layers["warehouse"].items())}

    running = defaults.schedule_status == "running"
    source_keys = [spec.key for layers in by_source.values() for spec in layers["source"].values()]
    observe, observe_schedule = observe_job(source_keys, defaults.schedule, running)
    jobs, schedules = sync_jobs(keys_by_cron, defaults.schedule, running)
    sensors: list[dg.SensorDefinition] = [batches_sensor(str(project.path), sensed, sensor_interval_s)]
    if automation == "conditions":
        schedules = []  # on_cron replaces them; sync_all and the per-cron jobs stay for manual runs
        sensors.append(dg.AutomationConditionSensorDefinition(
            "replicator_automation", target=dg.AssetSelection.assets(*lake_keys.values(), *warehouse_keys.values()),
            default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED))
    return dg.Definitions(
        assets=assets, jobs=[*jobs, observe],
        schedules=[*schedules, observe_schedule], sensors=sensors,
        resources={"replicator": ReplicatorResource(project=str(project.path))},
    )

