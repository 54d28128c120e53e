"""Jobs and schedules: sync_all, one schedule per table with its own cron, one for the rest."""

from __future__ import annotations

import dagster as dg

from replicator import Project

from . import translator as tr


def _selection(names: list[str]) -> dg.AssetSelection:
    keys = [k for n in names for k in (tr.lake_key(n), tr.warehouse_key(n))]
    return dg.AssetSelection.assets(*keys)


def jobs_and_schedules(project: Project) -> tuple[list[dg.UnresolvedAssetJobDefinition], list[dg.ScheduleDefinition]]:
    status = (dg.DefaultScheduleStatus.RUNNING if project.config.defaults.schedule_status == "running"
              else dg.DefaultScheduleStatus.STOPPED)
    names = list(project.tables)
    jobs = [dg.define_asset_job("sync_all", selection=_selection(names), description="sync every table")]
    schedules = []
    own = [n for n in names if project.tables[n].schedule]
    for name in own:
        job = dg.define_asset_job(f"sync_{name}", selection=_selection([name]), description=f"sync {name}")
        jobs.append(job)
        schedules.append(dg.ScheduleDefinition(name=f"sync_{name}_schedule", job=job,
                                               cron_schedule=project.tables[name].schedule, default_status=status))
    rest = [n for n in names if n not in own]
    if rest:
        job = dg.define_asset_job("sync_default", selection=_selection(rest),
                                  description="tables without a schedule of their own")
        jobs.append(job)
        schedules.append(dg.ScheduleDefinition(name="sync_default_schedule", job=job,
                                               cron_schedule=project.config.defaults.schedule, default_status=status))
    return jobs, schedules
