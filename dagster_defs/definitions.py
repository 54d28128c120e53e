"""`defs`: every table of replicator.yml as Dagster assets, checks, jobs and schedules."""

from __future__ import annotations

import logging
import os

import dagster as dg

from replicator import load_project
from replicator.lake import latest_manifest, open_store

from .assets import table_assets
from .checks import table_checks
from .resources import ReplicatorResource
from .schedules import jobs_and_schedules

log = logging.getLogger(__name__)


def _schema_hints(project_url: str, names: list[str]) -> dict[str, object]:
    """Column types from each table's latest manifest, when the lake is a local folder (no network at load)."""
    if "://" in project_url and not project_url.startswith("file://"):
        return {}
    hints: dict[str, object] = {}
    try:
        store = open_store(project_url)
        for name in names:
            manifest = latest_manifest(store, name)
            if manifest is not None:
                hints[name] = manifest.schema
    except Exception as exc:  # a hint only; the asset still works without it
        log.debug("no column schema hints: %s", exc)
    return hints


def build_definitions(project_path: str | None = None) -> dg.Definitions:
    """Definitions for the project at `project_path` (else $REPLICATOR_PROJECT, else ./replicator.yml)."""
    project = load_project(project_path, require_env=False)
    hints = _schema_hints(project.config.lake.url, list(project.tables))
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = []
    checks: list[dg.AssetChecksDefinition] = []
    for name, table in project.tables.items():
        assets += table_assets(name, table, hints.get(name))
        checks += table_checks(name)
    jobs, schedules = jobs_and_schedules(project)
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules,
        resources={"replicator": ReplicatorResource(project=str(project.path))},
    )


defs = build_definitions(os.environ.get("REPLICATOR_PROJECT"))
