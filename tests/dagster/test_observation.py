"""Dagster sees every sync: standard metadata and kinds, CLI syncs reported by the sensor, source observations,
freshness policies and automation conditions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from dagster_defs import build_definitions
from replicator import Replicator
from replicator.demo import write_demo_project
from replicator.demo_data import create_demo_database, mutate_demo_database

from ..conftest import execute, pg_database, write_project

LAKE, WH = dg.AssetKey(["lake", "rides"]), dg.AssetKey(["warehouse", "rides"])


def _demo(folder: Path, rides: int = 1500) -> Path:
    write_demo_project(folder)
    create_demo_database(folder / "app.db", rides=rides)
    return folder / "replicator.yml"


def _sensor_events(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.AssetMaterialization]:
    """One tick of the batches sensor; what it reports is recorded in the instance as the daemon does."""
    sensor = defs.get_sensor_def("replicator_batches")
    result = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    events = list(result.asset_events) if isinstance(result, dg.SensorResult) else []
    for event in events:
        instance.report_runless_asset_event(event)
    return events


def test_specs_carry_standard_metadata_and_kinds_with_a_duckdb_warehouse(tmp_path: Path) -> None:
    project = _demo(tmp_path / "demo")
    graph = build_definitions(str(project)).resolve_asset_graph()
    lake, wh, src = graph.get(LAKE), graph.get(WH), graph.get(dg.AssetKey(["source", "app", "rides"]))
    assert lake.kinds == {"parquet", "iceberg"} and wh.kinds == {"duckdb"} and src.kinds == {"sqlite"}
    assert lake.metadata["dagster/uri"] == str((project.parent / "lake" / "rides").resolve())
    assert wh.metadata["dagster/table_name"] == "raw.rides" and src.metadata["dagster/table_name"] == "rides"
    [ref] = lake.metadata["dagster/code_references"].code_references
    assert ref.file_path == str(project.parent / "schemas" / "rides.yml")
    assert [c.name for c in lake.metadata["dagster/column_schema"].columns][:2] == ["id", "city_id"]
    assert lake.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=1))


def test_postgres_warehouse_and_source_kinds(tmp_path: Path) -> None:
    with pg_database() as source_url, pg_database() as warehouse_url:
        execute(source_url, "CREATE TABLE rides (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
                "INSERT INTO rides (id) VALUES (1), (2), (3)")
        project = write_project(tmp_path, sources={"pg": source_url}, lake=str(tmp_path / "lake"), warehouse=warehouse_url,
                                tables={"rides": "source: pg\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"
                                                 "freshness: 2h\n"})
        defs = build_definitions(str(project))
        graph = defs.resolve_asset_graph()
        assert graph.get(WH).kinds == {"postgres"} and graph.get(dg.AssetKey(["source", "pg", "rides"])).kinds == {"postgres"}
        assert graph.get(LAKE).freshness_policy == dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=2))
        result = defs.resolve_job_def("sync_all").execute_in_process(instance=dg.DagsterInstance.ephemeral())
        assert result.success
        wh = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}[WH]
        assert wh["dagster/row_count"].value == 3 and wh["dagster/table_name"].value == "raw.rides"
        assert wh["batch_id"].value == 1


def test_a_cli_sync_shows_up_in_the_event_log_once(tmp_path: Path) -> None:
    project = _demo(tmp_path / "demo")
    defs = build_definitions(str(project))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert _sensor_events(defs, instance) == []  # nothing synced yet: nothing reported
        with Replicator.from_path(project) as rep:  # the CLI's code path: `replicator sync`
            for name in rep.project.tables:
                rep.sync(name)
        first = _sensor_events(defs, instance)
        assert {e.asset_key for e in first} >= {LAKE, WH}
        lake = instance.get_latest_materialization_event(LAKE).asset_materialization.metadata
        assert lake["batch_id"].value == 1 and lake["rows_committed"].value == 1500
        assert lake["dagster/row_count"].value == 1500 and "lake" in lake["dagster/uri"].value
        assert "price" in {c.name for c in lake["dagster/column_schema"].schema.columns}
        wh = instance.get_latest_materialization_event(WH).asset_materialization.metadata
        assert wh["dagster/row_count"].value == 1500 and wh["batch_id"].value == 1
        assert _sensor_events(defs, instance) == []  # idempotent by batch id

        mutate_demo_database(project.parent / "app.db")
        with Replicator.from_path(project) as rep:
            rep.sync("rides")
        second = _sensor_events(defs, instance)
        assert [(e.asset_key, e.metadata["batch_id"].value) for e in second] == [(LAKE, 2), (WH, 2)]

        # A sync run by Dagster records its batch id too: the sensor does not report it again.
        run = defs.resolve_job_def("sync_all").execute_in_process(instance=instance)
        assert run.success
        assert _sensor_events(defs, instance) == []
        records = instance.fetch_materializations(LAKE, limit=10).records
        # Nothing changed since batch 2: Dagster's run committed nothing and records the latest batch, 2.
        assert [r.asset_materialization.metadata["batch_id"].value for r in records] == [2, 2, 1]
        assert records[0].asset_materialization.metadata["committed"].value is False


def test_sources_are_observed_with_their_highest_watermark(tmp_path: Path) -> None:
    project = _demo(tmp_path / "demo")
    defs = build_definitions(str(project))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = defs.resolve_job_def("observe_sources").execute_in_process(instance=instance)
        assert result.success
        key = dg.AssetKey(["source", "app", "rides"])
        first = instance.get_latest_data_version_record(key).asset_observation.data_version
        assert first.startswith("updated_at=")
        cities = instance.get_latest_data_version_record(dg.AssetKey(["source", "app", "cities"]))
        assert cities.asset_observation.data_version == "rows=12"  # a full table: its row count
        mutate_demo_database(project.parent / "app.db")
        defs.resolve_job_def("observe_sources").execute_in_process(instance=instance)
        assert instance.get_latest_data_version_record(key).asset_observation.data_version > first


def test_on_cron_fires_despite_the_external_source(tmp_path: Path) -> None:
    project = _demo(tmp_path / "demo", rides=300)
    defs = build_definitions(str(project), automation="conditions", city_models=False)
    assert {s.name for s in defs.schedules} == {"observe_sources_schedule"}  # on_cron replaces the sync schedules
    assert "replicator_automation" in {s.name for s in defs.sensors}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        start = dt.datetime(2026, 12, 1, 10, 30, tzinfo=dt.timezone.utc)  # hourly cron ("0 * * * *")
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=start)
        assert first.total_requested == 0  # no tick passed since the condition was first evaluated
        after_tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor,
                                                       evaluation_time=start + dt.timedelta(hours=1, minutes=1))
        assert after_tick.get_num_requested(LAKE) == 1  # the source (never materialized) does not hold it back
        assert after_tick.get_num_requested(WH) == 1  # requested with its lake asset in the same tick
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after_tick.cursor,
                                                  evaluation_time=start + dt.timedelta(hours=1, minutes=5))
        assert again.get_num_requested(LAKE) == 0  # handled for this tick


@pytest.mark.parametrize("freshness", ["30m"])
def test_freshness_policy_follows_the_yaml(tmp_path: Path, freshness: str) -> None:
    project = _demo(tmp_path / "demo")
    rides = project.parent / "schemas" / "rides.yml"
    rides.write_text(rides.read_text() + f"freshness: {freshness}\n")
    graph = build_definitions(str(project)).resolve_asset_graph()
    assert graph.get(LAKE).freshness_policy == dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(minutes=30))
    assert graph.get(dg.AssetKey(["lake", "drivers"])).freshness_policy.fail_window.to_timedelta() == dt.timedelta(days=1)
