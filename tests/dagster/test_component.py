"""The Component and `dg`: loads from defs.yaml, `dg check defs` passes, translation and translator overrides."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import pytest

from dagster_defs import (
    DagsterReplicatorTranslator,
    ReplicatorComponent,
    ReplicatorTranslatorData,
    build_definitions,
)
from replicator.demo import write_demo_project

REPO = Path(__file__).resolve().parents[2]


def test_repository_defs_yaml_loads_the_demo_tables() -> None:
    defs = dg.load_from_defs_folder(project_root=REPO)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"lake/rides", "warehouse/rides", "source/app/rides", "city/ride_features", "city/price_model"} <= keys


def test_translation_in_yaml_changes_keys_groups_and_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_demo_project(tmp_path / "demo")
    module = f"rproj_{uuid.uuid4().hex[:8]}"  # a throwaway dg project: pyproject.toml, <module>/defs/replicator
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n[tool.dg.project]\nroot_module = "{module}"\n')
    defs_dir = tmp_path / module / "defs" / "replicator"
    defs_dir.mkdir(parents=True)
    (tmp_path / module / "__init__.py").write_text("")
    (tmp_path / module / "defs" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    (defs_dir / "defs.yaml").write_text(
        "type: dagster_defs.ReplicatorComponent\nattributes:\n  project: ../../../demo/replicator.yml\n"
        "  city_models: false\n"
        "  translation:\n    key_prefix: demo\n    group_name: \"{{ data.table.source }}_{{ data.layer }}\"\n"
        "    tags:\n      layer: \"{{ data.layer }}\"\n")
    defs = dg.load_from_defs_folder(project_root=tmp_path)
    graph = defs.resolve_asset_graph()
    lake = graph.get(dg.AssetKey(["demo", "lake", "rides"]))
    assert lake.group_name == "app_lake" and lake.tags["layer"] == "lake"
    assert graph.get(dg.AssetKey(["demo", "warehouse", "rides"])).parent_keys == {lake.key}
    assert lake.parent_keys == {dg.AssetKey(["demo", "source", "app", "rides"])}
    assert not any(k.path[0] == "city" for k in graph.get_all_asset_keys())


class TeamTranslator(DagsterReplicatorTranslator):
    def get_asset_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(key=spec.key.with_prefix("mobility"), group_name=f"mobility_{data.layer}")


def test_translator_override_changes_keys(tmp_path: Path) -> None:
    write_demo_project(tmp_path / "demo")
    defs = build_definitions(str(tmp_path / "demo" / "replicator.yml"), translator=TeamTranslator(), city_models=False)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert "mobility/lake/rides" in keys and "lake/rides" not in keys
    assert graph.get(dg.AssetKey(["mobility", "warehouse", "rides"])).parent_keys == {dg.AssetKey(["mobility", "lake", "rides"])}
    assert graph.get(dg.AssetKey(["mobility", "lake", "rides"])).group_name == "mobility_lake"
    assert {c.asset_key for c in graph.asset_check_keys} >= {dg.AssetKey(["mobility", "lake", "rides"])}


class PrefixedComponent(ReplicatorComponent):
    def get_asset_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        return super().get_asset_spec(data).replace_attributes(owners=["team:data"])


def test_component_subclass_overrides_get_asset_spec(tmp_path: Path) -> None:
    write_demo_project(tmp_path / "demo")
    component = PrefixedComponent(project=str(tmp_path / "demo" / "replicator.yml"), city_models=False)
    defs = dg.build_defs_for_component(component=component)
    assert defs.resolve_asset_graph().get(dg.AssetKey(["lake", "rides"])).owners == ["team:data"]


@pytest.mark.skipif(shutil.which("dg") is None, reason="dagster-dg-cli is a dependency; `pip install -e .` installs it")
def test_dg_check_defs_passes_on_the_repository() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REPLICATOR_PROJECT"}
    done = subprocess.run(["dg", "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr
    listed = subprocess.run(["dg", "list", "defs", "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert '"lake/rides"' in listed.stdout and '"city/price_model"' in listed.stdout
