"""The real UI: `dg dev` (a dg project whose defs.yaml points at the demo) and `dagster dev -m dagster_defs`
serve the same code location. Under `dg dev` a run launched through GraphQL succeeds and shows up in
Chromium; under `dagster dev -m` the webserver serves the same assets and jobs (the run launcher and the
pages are the same webserver's)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from replicator.demo import write_demo_project
from replicator.demo_data import create_demo_database

from ..conftest import _free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = Path(os.environ.get("REPLICATOR_SCREENSHOTS", REPO / "build" / "screenshots"))


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _dg_project(folder: Path, demo: Path) -> list[str]:
    """A throwaway `dg` project (pyproject.toml, <module>/defs/replicator/defs.yaml) over the demo, as a user writes it."""
    module = "replicator_ui_project"
    (folder / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n[tool.dg.project]\nroot_module = "{module}"\n'
        'code_location_name = "dagster_defs"\n')
    defs = folder / module / "defs" / "replicator"
    defs.mkdir(parents=True)
    (folder / module / "__init__.py").write_text("")
    (folder / module / "defs" / "__init__.py").write_text("")
    (folder / module / "definitions.py").write_text(  # what `create-dagster project` writes
        "from pathlib import Path\n\nimport dagster as dg\n\n\n@dg.definitions\ndef defs():\n"
        "    return dg.load_from_defs_folder(project_root=Path(__file__).parent.parent)\n")
    (defs / "defs.yaml").write_text(f"type: dagster_defs.ReplicatorComponent\nattributes:\n  project: {demo / 'replicator.yml'}\n")
    return ["dg", "dev"]


@pytest.fixture(params=["dg dev", "dagster dev -m dagster_defs"])
def dagster_ui(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    demo = tmp_path / "demo"
    write_demo_project(demo)
    create_demo_database(demo / "app.db", rides=2000)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "REPLICATOR_PROJECT": str(demo / "replicator.yml")}
    if request.param == "dg dev":
        assert shutil.which("dg"), "dagster-dg-cli is a dependency: pip install -e ."
        command = _dg_project(tmp_path, demo)
        env.pop("REPLICATOR_PROJECT")  # the Component names its project in defs.yaml
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])
    else:
        command = [sys.executable, "-m", "dagster", "dev", "-m", "dagster_defs"]
    log = open(tmp_path / "dagster-dev.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                data = _graphql(base, "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus } } } }")
                entries = data["data"]["workspaceOrError"].get("locationEntries") or []
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not come up in 120 s"
            time.sleep(1)
        yield base, demo, request.param
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


SERVED = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name location { name } jobs { name } assetNodes { assetKey { path } } } } } }"""


def test_materialize_rides_through_the_webserver_and_see_it_in_chromium(dagster_ui: tuple[str, Path, str]) -> None:
    base, demo, command = dagster_ui
    if command != "dg dev":
        repos = _graphql(base, SERVED)["data"]["repositoriesOrError"]["nodes"]
        assert [r["location"]["name"] for r in repos] == ["dagster_defs"], repos
        assets = {"/".join(a["assetKey"]["path"]) for a in repos[0]["assetNodes"]}
        assert {"lake/rides", "warehouse/rides", "lake/cities", "warehouse/cities"} <= assets, assets
        assert "sync_all" in {j["name"] for j in repos[0]["jobs"]}
        return
    params = {
        "selector": {
            "repositoryLocationName": "dagster_defs", "repositoryName": "__repository__", "jobName": "sync_all",
            "assetSelection": [{"path": ["lake", "rides"]}, {"path": ["warehouse", "rides"]}],
        },
        "runConfigData": {},
    }
    launched = _graphql(base, LAUNCH, {"params": params})["data"]["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        status = _graphql(base, STATUS, {"id": run_id})["data"]["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS"
    assert (demo / "warehouse.duckdb").exists()
    # The first-visit "join the community" dialog is the webserver's NUX: marked seen, as its Skip button does.
    assert _graphql(base, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True

    from playwright.sync_api import sync_playwright

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "asset-graph.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.goto(f"{base}/asset-groups", wait_until="networkidle")
        page.goto(f"{base}/locations/dagster_defs/asset-groups/app", wait_until="networkidle")
        page.get_by_text("seconds ago", exact=False).first.wait_for(timeout=60_000)  # rides materialized
        page.screenshot(path=str(shot), full_page=True)
        graph_text = page.inner_text("body")
        page.goto(f"{base}/locations/dagster_defs/asset-groups/city_models", wait_until="networkidle")
        page.get_by_text("price_model", exact=False).first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOT_DIR / "city-models.png"), full_page=True)
        city_text = page.inner_text("body")
        asset_page = context.new_page()
        asset_page.goto(f"{base}/assets/lake/rides", wait_until="networkidle")
        asset_page.get_by_text("rows_extracted", exact=False).first.wait_for(timeout=60_000)
        asset_page.screenshot(path=str(SCREENSHOT_DIR / "lake-rides.png"), full_page=True)
        asset_text = asset_page.inner_text("body")
        browser.close()
    assert "Join the Dagster community" not in graph_text
    assert graph_text.count("rides") >= 3 and "Never materialized" in graph_text  # other tables not run
    assert "ride_features" in city_text and "price_model" in city_text and "Partitions" in city_text
    assert "rows_extracted" in asset_text and "2,000" in asset_text.replace("2000", "2,000")
    assert shot.stat().st_size > 20_000
