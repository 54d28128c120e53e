"""Every command is safe as the first one after a SIGKILLed sync, and the next sync converges.

Per crash (a sync killed by `tests.faults.killer` after its manifest, mid-publish, before the warehouse
load, or while a full refresh retires the files it replaces), one crashed project is prepared: a
PostgreSQL table with updates, soft deletes, hard deletes (found by `delete_detection: reconcile`) and
inserts, a local lake and a DuckDB warehouse, with paths relative to replicator.yml so the folder can
be copied. Each command then runs on its own copy as the first command after the crash, through the
CLI in a subprocess where there is one (`load` and `read_table` are Python calls), followed by a final
sync (in-process, to keep the matrix fast; the CLI's sync is the `sync` command's case).

The lake is judged by an oracle of its own, not replicator's current-state code: DuckDB over the Hive
folders (per key the highest _batch_id, then the highest watermark, minus _deleted), manifests read as
JSON, file listings with os.walk; the warehouse by `count(*)`, `count(DISTINCT id)` and its values;
both against the source rows column by column.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from replicator import Replicator
from replicator.lake import acquire_lease

from ..conftest import execute, pg_database, query
from .common import finish, norm, spawn

pytestmark = pytest.mark.integration

Row = tuple[Any, ...]  # (payload, created_at, updated_at), timestamps as naive UTC
State = dict[int, Row]

TABLE = "events"
# killer arguments per crash; nth 2: one file is published (or retired) before the kill
CRASHES = {
    "after_manifest": ("after_manifest",),
    "mid_publish": ("mid_publish", "2"),
    "before_load": ("before_load",),
    "mid_retire": ("mid_retire", "2", "--full-refresh"),
}
COMMANDS = ("reconcile --apply-deletes", "reconcile", "compact", "snapshot", "status", "load", "sync", "read_table")
HARD_DELETED = range(81, 91)


@dataclass(frozen=True)
class Crash:
    point: str
    folder: Path  # replicator.yml, schemas/, lake/, warehouse.duckdb as the killed sync left them
    source: str
    original: State  # the source before the changes (what batch 1 and the warehouse hold)
    committed: State  # the lake's state once the killed run's committed batches are published
    final: State  # the source after the changes: where everything must end


def _write_project(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "schemas").mkdir()
    (folder / "replicator.yml").write_text(textwrap.dedent(f"""\
        sources:
          app:
            url: '{source}'
            batch_rows: 50
        lake:
          url: lake
          row_group_rows: 50
          file_max_rows: 50
        warehouse:
          url: duckdb:///warehouse.duckdb
          schema: raw
        defaults:
          lease_ttl: 1h
        """))
    (folder / "schemas" / f"{TABLE}.yml").write_text(textwrap.dedent("""\
        source: app
        table: events
        primary_key: [id]
        watermark: updated_at
        partition_by: created_at
        soft_delete: deleted_at
        delete_detection: reconcile
        reconcile_every: 0s
        """))
    return folder / "replicator.yml"


def _source_state(url: str) -> State:
    rows = query(url, f"SELECT id, payload, created_at, updated_at FROM {TABLE} WHERE deleted_at IS NULL")
    return {r[0]: tuple(norm(v) for v in r[1:]) for r in rows}


def _crash(point: str, url: str, folder: Path) -> Crash:
    execute(url, f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, payload text NOT NULL, "
                 "created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, deleted_at timestamptz)",
            f"INSERT INTO {TABLE} SELECT g, 'v1-' || g, timestamptz '2026-01-01 00:00:00+00' + (g % 3) * "
            "interval '1 day', now(), NULL FROM generate_series(1, 300) g")
    project = _write_project(folder, url)
    with Replicator.from_path(project) as rep:
        assert rep.sync(TABLE).extract.files >= 6  # several files per batch, so publishes can be cut
    original = _source_state(url)
    execute(url,
            f"UPDATE {TABLE} SET payload = 'v2-' || id, updated_at = now() WHERE id <= 60",
            f"UPDATE {TABLE} SET deleted_at = now(), updated_at = now() WHERE id BETWEEN 61 AND 80",
            f"DELETE FROM {TABLE} WHERE id BETWEEN {HARD_DELETED[0]} AND {HARD_DELETED[-1]}",
            f"INSERT INTO {TABLE} SELECT g, 'v1-' || g, timestamptz '2026-01-01 00:00:00+00' + (g % 3) * "
            "interval '1 day', now(), NULL FROM generate_series(301, 360) g")
    final = _source_state(url)
    code, output = finish({point: spawn("-m", "tests.faults.killer", str(project), TABLE, *CRASHES[point])})[point]
    assert code == -signal.SIGKILL, f"the killer exited {code}, not by SIGKILL\n{output}"
    # Killed in the extract, the sync never reached its reconcile: the hard deletes are not committed
    # yet. A full batch leaves them out by itself; before_load comes after the sync's reconcile.
    hard = {k: original[k] for k in HARD_DELETED}
    committed = final if point in ("before_load", "mid_retire") else {**final, **hard}
    return Crash(point, folder, url, original, committed, final)


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Crash]]:
    """One crashed project per point, made on first use and shared by every test of the module."""
    made: dict[str, Crash] = {}
    with contextlib.ExitStack() as databases:
        def get(point: str) -> Crash:
            if point not in made:
                folder = tmp_path_factory.mktemp(f"crash-{point}") / "project"
                made[point] = _crash(point, databases.enter_context(pg_database()), folder)
            return made[point]

        yield get


@pytest.fixture(scope="module", params=list(CRASHES))
def crash(request: pytest.FixtureRequest, crashes: Callable[[str], Crash]) -> Crash:
    return crashes(request.param)


# -- the oracle ---------------------------------------------------------------------------------------

def lake_state(lake: Path) -> State:
    """Per key, the row of the highest _batch_id, then the highest watermark, unless it is a deletion."""
    glob = str(lake / TABLE / "*" / "*.parquet").replace("'", "''")
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT id, payload, created_at, updated_at FROM (SELECT *, row_number() OVER (PARTITION BY id "
            "ORDER BY _batch_id DESC, updated_at DESC NULLS LAST) AS rn FROM "
            f"read_parquet('{glob}', hive_partitioning = true)) WHERE rn = 1 AND NOT _deleted").fetchall()
        repeated = con.execute(
            "SELECT count(*) FROM (SELECT id, updated_at FROM "
            f"read_parquet('{glob}', hive_partitioning = true) WHERE updated_at IS NOT NULL "
            "GROUP BY id, updated_at HAVING count(*) > 1)").fetchone()
    finally:
        con.close()
    assert repeated == (0,), f"{repeated} row versions are in the Hive layout more than once"
    return {r[0]: tuple(norm(v) for v in r[1:]) for r in rows}


def warehouse_state(folder: Path) -> State:
    con = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
    try:
        total, keys = con.execute(f"SELECT count(*), count(DISTINCT id) FROM raw.{TABLE}").fetchone()  # type: ignore[misc]
        rows = con.execute(f"SELECT id, payload, created_at, updated_at FROM raw.{TABLE}").fetchall()
    finally:
        con.close()
    assert total == keys, f"the warehouse has {total} rows for {keys} keys"
    return {r[0]: tuple(norm(v) for v in r[1:]) for r in rows}


def manifests(lake: Path) -> list[dict[str, Any]]:
    folder = lake / TABLE / "_manifests"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def assert_layout_clean(lake: Path) -> None:
    """The Hive layout holds exactly the files of the committed manifests since the last full batch; no staging."""
    chain = manifests(lake)
    start = max((i for i, m in enumerate(chain) if m["mode"] == "full"), default=0)
    listed = {f["path"] for m in chain[start:] for f in m["files"]}
    base = lake / TABLE
    visible = set()
    for top, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith("_")]  # what Hive-aware readers skip
        visible |= {str(Path(top, f).relative_to(base)) for f in files if f.endswith(".parquet")}
    assert visible == listed, f"Hive layout != committed files: unlisted {sorted(visible - listed)[:3]}, " \
                              f"unpublished {sorted(listed - visible)[:3]}"
    staging = base / "_staging"
    left = [str(p.relative_to(base)) for p in staging.rglob("*")] if staging.exists() else []
    assert left == [], f"staging left behind: {left[:5]}"


def assert_same(expected: State, got: State, what: str) -> None:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = {k: (expected[k], got[k]) for k in sorted(expected) if k in got and got[k] != expected[k]}
    assert not (missing or extra or wrong), (f"{what}: {len(missing)} missing {missing[:5]}, {len(extra)} extra "
                                             f"{extra[:5]}, {len(wrong)} different {dict(list(wrong.items())[:3])}")


def rows_of(table: Any) -> State:
    return {r["id"]: (r["payload"], norm(r["created_at"]), norm(r["updated_at"])) for r in table.to_pylist()}


# -- the tests ----------------------------------------------------------------------------------------

def _cli(project: Path, *args: str) -> tuple[int, str]:
    return finish({"cli": spawn("-m", "replicator", "--project", str(project), *args)})["cli"]


def _copy(crash: Crash, tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(crash.folder, folder)
    return folder


def _first_command(command: str, crash: Crash, folder: Path) -> State:
    """Run `command` on the crashed copy, check what it says, return the lake state it must leave."""
    project = folder / "replicator.yml"
    if command == "load":
        with Replicator.from_path(project) as rep:
            assert rep.load(TABLE).batches, "nothing loaded"
        assert_same(crash.committed, warehouse_state(folder), "warehouse after load")
        return crash.committed
    if command == "read_table":
        with Replicator.from_path(project) as rep:
            assert_same(crash.committed, rows_of(rep.read_table(TABLE)), "read_table")
        return crash.committed
    name, *flags = command.split()
    flags += {"snapshot": ["--out", str(folder / "snap.parquet")], "status": ["--json"]}.get(name, [])
    code, output = _cli(project, name, TABLE, *flags)
    assert "FAILED" not in output and "error:" not in output, output
    if command.startswith("reconcile"):
        assert code == 1, output  # the warehouse is behind the lake (and, without markers, the source)
        applied = command.endswith("--apply-deletes")
        if applied and crash.committed != crash.final:
            assert "committed deletion markers for 10 keys" in output, output
        return crash.final if applied else crash.committed
    assert code == 0, output
    if command == "snapshot":
        assert_same(crash.committed, rows_of(pq.read_table(folder / "snap.parquet")), "snapshot")
    elif command == "status":
        status = json.loads(output.split("--- stdout\n", 1)[1].split("--- stderr", 1)[0])[0]
        assert status["last_batch_id"] == manifests(folder / "lake")[-1]["seq"], output
        assert status["warehouse_batch_id"] == 1, output
    elif command == "sync":
        assert_same(crash.final, warehouse_state(folder), "warehouse after sync")
        return crash.final
    return crash.committed


@pytest.mark.parametrize("command", COMMANDS)
def test_first_command_after_a_crash_recovers_then_sync_converges(command: str, crash: Crash, tmp_path: Path) -> None:
    folder = _copy(crash, tmp_path)
    lake = folder / "lake"
    expected = _first_command(command, crash, folder)
    assert_layout_clean(lake)  # the command finished the dead run's publish (or there was none)
    assert_same(expected, lake_state(lake), f"lake after {command}")
    if command not in ("load", "sync"):
        assert_same(crash.original, warehouse_state(folder), f"warehouse after {command}")

    with Replicator.from_path(folder / "replicator.yml") as rep:  # in-process: one interpreter start less per case
        rep.sync(TABLE)
    assert_layout_clean(lake)
    assert_same(crash.final, lake_state(lake), "lake after the final sync")
    assert_same(crash.final, warehouse_state(folder), "warehouse after the final sync")
    assert not (lake / TABLE / "_state" / "lease.json").exists()


def _staged(lake: Path) -> list[str]:
    return sorted(str(p.relative_to(lake)) for p in (lake / TABLE / "_staging").rglob("*.parquet"))


def test_readers_move_nothing_while_a_live_run_holds_the_lease(crashes: Callable[[str], Crash], tmp_path: Path) -> None:
    """Beside a live run, read-only commands read each file where it is; committing commands refuse."""
    crash = crashes("mid_publish")
    folder = _copy(crash, tmp_path)
    project, lake = folder / "replicator.yml", folder / "lake"
    staged = _staged(lake)
    assert staged, "the crash left nothing staged"
    with Replicator.from_path(project) as rep:
        # This process takes the dead run's lease over and, being alive, stands for a live run.
        lease = acquire_lease(rep.lake, TABLE, uuid.uuid4().hex, dt.timedelta(hours=1))
        try:
            code, output = _cli(project, "snapshot", TABLE, "--out", str(folder / "snap.parquet"))
            assert code == 0, output
            assert_same(crash.committed, rows_of(pq.read_table(folder / "snap.parquet")), "snapshot")
            for command in (["compact", TABLE], ["reconcile", TABLE, "--apply-deletes"]):
                code, output = _cli(project, *command)
                assert code == 1 and "being synced by another run" in output, output
            assert rep.recover(TABLE) == "busy"
            assert_same(crash.committed, rows_of(rep.read_table(TABLE)), "read_table")
            assert rep.load(TABLE).batches == [2]
            assert_same(crash.committed, warehouse_state(folder), "warehouse")
            assert _staged(lake) == staged  # nothing was moved under the live run
        finally:
            lease.release()
    code, output = _cli(project, "sync", TABLE)
    assert code == 0, output
    assert_layout_clean(lake)
    assert_same(crash.final, lake_state(lake), "lake after the sync")
    assert_same(crash.final, warehouse_state(folder), "warehouse after the sync")


def test_a_committed_batch_is_published_even_below_a_later_one(crashes: Callable[[str], Crash], tmp_path: Path) -> None:
    """Parts of a committed batch are never dropped as a dead run's staging, even when a later batch
    was committed without finishing it (every commit recovers first now; this guards older lakes)."""
    crash = crashes("after_manifest")
    from replicator.reconcile import commit_deletes

    folder = _copy(crash, tmp_path)
    project, lake = folder / "replicator.yml", folder / "lake"
    with Replicator.from_path(project) as rep:
        with acquire_lease(rep.lake, TABLE, uuid.uuid4().hex, dt.timedelta(hours=1)) as lease:
            assert commit_deletes(rep, TABLE, lease, [(k,) for k in HARD_DELETED], 350) == 3  # batch 2 still staged
    assert _staged(lake)
    code, output = _cli(project, "status", TABLE)
    assert code == 0, output
    assert_layout_clean(lake)
    assert_same(crash.final, lake_state(lake), "lake after status")
    code, output = _cli(project, "sync", TABLE)
    assert code == 0, output
    assert_same(crash.final, warehouse_state(folder), "warehouse after the sync")
