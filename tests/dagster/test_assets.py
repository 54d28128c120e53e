"""The Dagster code location: definitions from YAML, materializations, metadata, checks, executors."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from dagster_defs import build_definitions
from replicator.demo import write_demo_project
from replicator.demo_data import create_demo_database, mutate_demo_database

from ..conftest import execute, write_project

REPO = Path(__file__).resolve().parents[2]


def _demo(folder: Path) -> Path:
    write_demo_project(folder)
    create_demo_database(folder / "app.db", rides=3000)
    return folder / "replicator.yml"


def _all_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    return [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] in ("lake", "warehouse")]


def _materialization(result: dg.ExecuteInProcessResult, layer: str, name: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey([layer, name])]
    return dict(event.materialization.metadata)


def _materialize_all(defs: dg.Definitions, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("sync_all")
    return job.execute_in_process(instance=instance or dg.DagsterInstance.ephemeral())


def test_repository_definitions_follow_the_yaml_files() -> None:
    defs = build_definitions(str(REPO / "replicator.yml"))
    graph = defs.resolve_asset_graph()
    names = sorted(p.stem for p in (REPO / "schemas").glob("*.yml"))
    for name in names:
        lake, wh, src = dg.AssetKey(["lake", name]), dg.AssetKey(["warehouse", name]), dg.AssetKey(["source", "app", name])
        assert lake in graph.get_all_asset_keys() and wh in graph.get_all_asset_keys()
        assert graph.get(wh).parent_keys == {lake}
        assert graph.get(lake).parent_keys == {src}
        assert graph.get(src).is_external
        assert graph.get(lake).group_name == "app"
    # One pool per source bounds the queries on it; one per table keeps a table's loads apart.
    assert [graph.get(dg.AssetKey(["lake", n])).pools for n in names] == [{"replicator-source-app"}] * len(names)
    assert [graph.get(dg.AssetKey(["warehouse", n])).pools for n in names] == [{"replicator-warehouse-app"}] * len(names)
    rides = graph.get(dg.AssetKey(["lake", "rides"]))
    assert rides.description == "One row per ride request, updated as the ride progresses."
    checks = {(k.asset_key.path[0], k.name) for k in graph.asset_check_keys}
    assert checks == {("warehouse", "row_count_parity"), ("lake", "freshness"), ("lake", "schema_drift"),
                      ("lake", "reconciliation")}
    assert {s.name for s in defs.schedules} == {"sync_default_schedule", "observe_sources_schedule"}
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in defs.schedules)
    assert defs.resolve_job_def("sync_all") is not None


def test_a_new_yaml_file_adds_a_table_with_its_own_schedule(tmp_path: Path) -> None:
    project = _demo(tmp_path / "demo")
    (project.parent / "schemas" / "rides_hot.yml").write_text(
        "source: app\ntable: rides\nprimary_key: [id]\nwatermark: updated_at\nschedule: '*/15 * * * *'\n"
        "owners: [team:mobility]\ntags: {domain: rides}\nfreshness: 2h\n")
    (project.parent / "schemas" / "rides.yml").unlink()  # one file per source table
    defs = build_definitions(str(project))
    spec = defs.resolve_asset_graph().get(dg.AssetKey(["lake", "rides_hot"]))
    assert spec.owners == ["team:mobility"] and spec.tags["domain"] == "rides"
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["sync_cron_xevery15_x_x_x_x_schedule"].cron_schedule == "*/15 * * * *"
    assert schedules["sync_default_schedule"].cron_schedule == "0 * * * *"


def test_demo_materializes_with_metadata_and_green_checks(tmp_path: Path) -> None:
    project = _demo(tmp_path / "demo")
    defs = build_definitions(str(project))
    result = _materialize_all(defs)
    assert result.success
    lake = _materialization(result, "lake", "rides")
    assert lake["rows_extracted"].value == 3000 and lake["batch_id"].value == 1
    assert lake["files_written"].value > 1 and lake["bytes_written"].value > 0
    assert lake["watermark_after"].value is not None and "lake" in str(lake["lake_path"].value)
    columns = {c.name: c.type for c in lake["dagster/column_schema"].schema.columns}
    assert columns["price"] == "decimal128(12, 2)" and "_batch_id" in columns
    wh = _materialization(result, "warehouse", "rides")
    assert wh["rows_loaded"].value == 3000 and wh["rows_in_table"].value == 3000
    evaluations = result.get_asset_check_evaluations()
    # 5 tables: 3 lake checks and Iceberg publication (the demo publishes), 1 warehouse check each
    assert len(evaluations) == 25 and all(e.passed for e in evaluations), [e.description for e in evaluations if not e.passed]
    assert {e.asset_key.path[1] for e in evaluations if e.check_name == "iceberg_published"} == {
        "cities", "drivers", "payments", "riders", "rides"}
    assert lake["iceberg_table"].value == "lake.rides" and lake["iceberg_snapshot_id"].value > 0
    assert lake["iceberg_current_table"].value == "lake_current.rides"
    assert lake["iceberg_current_snapshot_id"].value > 0
    assert "iceberg" in defs.resolve_asset_graph().get(dg.AssetKey(["lake", "rides"])).kinds

    mutate_demo_database(project.parent / "app.db")
    again = _materialize_all(defs)
    meta = _materialization(again, "lake", "rides")
    assert meta["batch_id"].value == 2 and meta["watermark_before"].value == lake["watermark_after"].value

    con = duckdb.connect(str(project.parent / "warehouse.duckdb"))
    con.execute("DELETE FROM raw.rides WHERE id = 7")
    con.close()
    third = _materialize_all(defs)
    parity = [e for e in third.get_asset_check_evaluations()
              if e.check_name == "row_count_parity" and e.asset_key == dg.AssetKey(["warehouse", "rides"])][0]
    assert not parity.passed
    assert "1 keys missing from the warehouse (e.g. [(7,)])" in parity.description


def test_postgres_and_mariadb_project_on_s3(tmp_path: Path, pg_url: str, mysql_url: str, s3_lake: str,
                                            duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE rides (id bigint PRIMARY KEY, fare numeric(10,2), updated_at timestamptz NOT NULL)",
            "INSERT INTO rides SELECT g, g * 0.5, now() - interval '1 minute' FROM generate_series(1, 500) g")
    execute(mysql_url, "CREATE TABLE drivers (id int PRIMARY KEY, name varchar(40), updated_at datetime(6) NOT NULL)",
            "INSERT INTO drivers VALUES (1, 'Ana', UTC_TIMESTAMP(6)), (2, 'Łukasz', UTC_TIMESTAMP(6))")
    project = write_project(tmp_path, sources={"pg": pg_url, "my": mysql_url}, lake=s3_lake, warehouse=duckdb_url, tables={
        "rides": "source: pg\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n",
        "drivers": "source: my\ntable: drivers\nprimary_key: [id]\nwatermark: updated_at\ncolumns: [id, name, updated_at]\n"})
    defs = build_definitions(str(project))
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["lake", "rides"])).group_name == "pg"
    assert graph.get(dg.AssetKey(["lake", "drivers"])).group_name == "my"
    result = _materialize_all(defs)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert _materialization(result, "warehouse", "rides")["rows_in_table"].value == 500
    assert _materialization(result, "warehouse", "drivers")["rows_in_table"].value == 2

    execute(mysql_url, "ALTER TABLE drivers ADD COLUMN rating decimal(3,2)")
    drift = defs.resolve_job_def("sync_all").execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    failed = {e.check_name: e for e in drift.get_asset_check_evaluations() if e.asset_key.path[-1] == "drivers"}
    assert drift.success  # the YAML's column list keeps the new column out of the lake ...
    assert not failed["schema_drift"].passed  # ... and the drift check says so
    assert failed["schema_drift"].description == "source has columns not in drivers.yml: rating"


def test_permanent_errors_fail_once_with_the_library_message(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    project = write_project(tmp_path, sources={"pg": pg_url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            tables={"ghost": "source: pg\ntable: public.ghost\nprimary_key: [id]\nwatermark: updated_at\n"})
    defs = build_definitions(str(project))
    result = defs.resolve_job_def("sync_all").execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1  # no retries for a permanent error
    text = str(failures[0].event_specific_data.error)
    assert "public.ghost" in text and "not found" in text


def test_multiprocess_executor_runs_several_tables_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _demo(tmp_path / "demo")
    monkeypatch.setenv("REPLICATOR_PROJECT", str(project))
    from .jobs import two_tables_job

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(
            dg.reconstructable(two_tables_job), instance=instance,
            run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
        )
        assert result.success
        mats = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
        assert len(mats) == 4
        pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        assert len(pids) > 1  # steps ran in separate processes
    con = duckdb.connect(str(project.parent / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.rides").fetchone()[0] == 3000
    con.close()
    assert os.environ["REPLICATOR_PROJECT"] == str(project)


def test_source_pool_runs_one_extract_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With dagster_home's pool limit of 1, two tables of one source never read it at the same time."""
    project = _demo(tmp_path / "demo")
    monkeypatch.setenv("REPLICATOR_PROJECT", str(project))
    from .jobs import two_tables_job

    limits = yaml.safe_load((REPO / "dagster_home" / "dagster.yaml").read_text())["concurrency"]
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides={"concurrency": limits}) as instance:
        result = dg.execute_job(
            dg.reconstructable(two_tables_job), instance=instance,
            run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 4}}}},
        )
        assert result.success
        spans: dict[str, list[float]] = {}
        for record in instance.all_logs(result.run_id):
            e = record.dagster_event
            if e and e.step_key and e.step_key.startswith("lake__") and e.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                spans.setdefault(e.step_key, []).append(record.timestamp)
    # One step per source extracts its tables one after another; its pool (limit 1) keeps other runs' extracts
    # of that source out while it runs.
    assert list(spans) == ["lake__app"]


def test_secrets_never_reach_run_config_logs_or_metadata(tmp_path: Path, pg_url: str, duckdb_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    secret = "Dagst3rS3cret-pw"
    monkeypatch.setenv("RT_PG_PASSWORD", secret)
    url = sa.engine.make_url(pg_url)
    templated = f"postgresql://postgres:${{RT_PG_PASSWORD}}@{url.host}:{url.port}/{url.database}"
    execute(pg_url, "CREATE TABLE rides (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO rides (id) VALUES (1), (2)")
    project = write_project(tmp_path, sources={"pg": templated}, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            tables={"rides": "source: pg\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"})
    defs = build_definitions(str(project))
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("sync_all").execute_in_process(instance=instance)
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert secret not in repr(run.run_config) and secret not in repr(run.tags)
    records = instance.all_logs(result.run_id)
    assert records and all(secret not in repr(r) for r in records)
    assert secret not in repr(defs.get_repository_def().get_top_level_resources())
