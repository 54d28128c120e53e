"""SIGKILL a real sync process at every step of the commit protocol, then check readers and the next run.

Per kill point, two or three scenarios run side by side (their subprocesses concurrently):
PostgreSQL -> S3 lake -> DuckDB, MariaDB -> S3 lake -> PostgreSQL warehouse, and for the points whose
code differs on a local lake (parts are files, moves are renames) PostgreSQL -> local lake -> DuckDB.

Each scenario: seed 600 rows (three partitions), sync once in-process, update 200 rows and insert 200,
run `tests.faults.killer` at the point (the child must die by SIGKILL), check what a reader sees right
after the kill (only files of committed manifests; the warehouse equal to the lake state of the batch
its ledger names), then run `python -m replicator sync` and check that everything converged with
exactly one new batch. Unlike tests/integration/test_guarantees.py (exceptions raised in-process,
where `finally` blocks and context managers still run), nothing of the dead process cleans up here:
its lease, staging parts, spooled temporary files and open transactions are all left behind. Leases
last an hour here, so the next run gets in only because it sees that the holder died on this machine.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from replicator import Replicator
from replicator.lake import list_manifest_seqs, paths

from ..integration.helpers import lake_dataset
from .common import (
    assert_converged,
    assert_only_committed_visible,
    assert_warehouse_is_a_committed_state,
    create_events,
    finish,
    insert_rows,
    spawn,
    update_rows,
    write_project,
)
from .killer import POINTS

pytestmark = pytest.mark.integration

# Points after which batch 2 is committed (its manifest exists) although the run died.
COMMITTED_AT = {"after_manifest", "mid_publish", "before_load", "mid_load"}
# Points whose code path differs on a local lake.
LOCAL_TOO = {"upload", "mid_publish"}


@dataclass
class Scenario:
    label: str
    source: str
    project: Path

    def rep(self) -> Replicator:
        return Replicator.from_path(self.project)


_TTL = "1h"  # far beyond the test: only the dead-holder check lets the next run in


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_point_then_rerun_converges(point: str, tmp_path: Path, pg_url: str, mysql_url: str,
                                                     s3_lake: str, duckdb_url: str, pg_warehouse: str) -> None:
    for url in (pg_url, mysql_url):
        create_events(url)
        insert_rows(url, 1, 600)
    scenarios = [
        Scenario("pg-s3-duckdb", pg_url, write_project(tmp_path / "a", source=pg_url, lake=f"{s3_lake}/a",
                                                       warehouse=duckdb_url, lease_ttl=_TTL)),
        Scenario("mariadb-s3-pgwh", mysql_url, write_project(tmp_path / "b", source=mysql_url, lake=f"{s3_lake}/b",
                                                             warehouse=pg_warehouse, lease_ttl=_TTL)),
    ]
    if point in LOCAL_TOO:
        scenarios.append(Scenario("pg-local-duckdb", pg_url, write_project(
            tmp_path / "c", source=pg_url, lake=str(tmp_path / "c" / "lake"),
            warehouse=f"duckdb:///{tmp_path / 'c' / 'warehouse.duckdb'}", lease_ttl=_TTL)))
    for s in scenarios:
        with s.rep() as rep:
            first = rep.sync("events")
        assert first.extract.rows_committed == 600 and first.extract.files >= 6, s.label  # several files per batch

    for url in (pg_url, mysql_url):
        update_rows(url, 1, 200, "v2")
        insert_rows(url, 601, 800, "v1")

    killed = finish({s.label: spawn("-m", "tests.faults.killer", str(s.project), "events", point) for s in scenarios})
    for s in scenarios:
        code, output = killed[s.label]
        assert code == -signal.SIGKILL, f"{s.label}: the killer exited {code}, not by SIGKILL\n{output}"

    # What readers see right after the kill: committed data only.
    committed = point in COMMITTED_AT
    left: dict[str, bool] = {}  # did the dead run leave its lease (it holds one while it extracts)?
    for s in scenarios:
        rep = s.rep()
        assert_only_committed_visible(rep)
        assert_warehouse_is_a_committed_state(rep)
        assert list_manifest_seqs(rep.lake, "events") == ([1, 2] if committed else [1]), s.label
        if not committed:
            assert lake_dataset(rep, "events").num_rows == 600, s.label  # nothing of the dead run is visible
        assert rep.warehouse.last_loaded_seq("events") == 1, s.label
        left[s.label] = rep.lake.exists(paths.lease_path(rep.lake.root, "events"))

    synced = finish({s.label: spawn("-m", "replicator", "--project", str(s.project), "sync", "events")
                      for s in scenarios})
    for s in scenarios:
        code, output = synced[s.label]
        assert code == 0, f"{s.label}: the sync after the kill failed\n{output}"
        # The lease lives for an hour, yet the next run takes it over at once: its holder died on this machine.
        assert ("is no longer running; taking over its lease" in output) == left[s.label], f"{s.label}\n{output}"
        rep = s.rep()
        assert list_manifest_seqs(rep.lake, "events") == [1, 2], s.label  # the change was committed exactly once
        assert rep.warehouse.last_loaded_seq("events") == 2, s.label
        assert_converged(rep, s.source)
        assert not rep.lake.exists(paths.lease_path(rep.lake.root, "events")), s.label
