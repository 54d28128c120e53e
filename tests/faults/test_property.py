"""Property: any history of inserts, updates and watermark ties, synced at any points, converges.

Hypothesis generates sequences of operations on one PostgreSQL table; after every sync the lake's
current state and the DuckDB warehouse must equal the source, with no key or row version twice.
Each example gets a fresh lake and warehouse (temporary folders) and an emptied table.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from replicator import Replicator

from ..conftest import execute, pg_database, query
from .common import assert_converged, create_events, write_project

pytestmark = pytest.mark.integration

# No example database (settings below) and no cache of constants in the repository either.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="replicator-hypothesis-"))


@pytest.fixture(scope="module")
def prop_pg() -> Iterator[str]:
    """One PostgreSQL database for every example of the module (the table is truncated per example)."""
    with pg_database("rp") as url:
        create_events(url)
        yield url


picks = st.lists(st.integers(0, 10_000), min_size=1, max_size=8)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(1, 25)),
        st.tuples(st.just("update"), picks),  # new versions stamped now()
        st.tuples(st.just("tie"), picks),  # new versions stamped with the newest existing stamp
        st.tuples(st.just("sync"), st.just(0)),
    ),
    min_size=1, max_size=10,
)


def _ids(url: str, picked: list[int], where: str = "TRUE") -> list[int]:
    existing = [r[0] for r in query(url, f"SELECT id FROM events WHERE {where} ORDER BY id")]
    return sorted({existing[p % len(existing)] for p in picked}) if existing else []


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_any_history_of_writes_and_syncs_converges(prop_pg: str, ops: list[tuple[str, object]]) -> None:
    url = prop_pg
    execute(url, "TRUNCATE events")
    with tempfile.TemporaryDirectory(prefix="replicator-prop-") as folder:
        root = Path(folder)
        project = write_project(root / "project", source=url, lake=str(root / "lake"),
                                warehouse=f"duckdb:///{root / 'warehouse.duckdb'}",
                                batch_rows=7, row_group_rows=10, file_max_rows=20)  # ties span read batches
        next_id, version = 1, 0
        with Replicator.from_path(project) as rep:
            for step, (kind, arg) in enumerate([*ops, ("sync", 0)]):
                version += 1
                if kind == "insert":
                    assert isinstance(arg, int)
                    execute(url, f"INSERT INTO events SELECT g, 'i{version}-' || g, "
                                 "timestamptz '2026-01-01 00:00:00+00' + (g % 4) * interval '1 day', now() "
                                 f"FROM generate_series({next_id}, {next_id + arg - 1}) g")
                    next_id += arg
                elif kind == "update":
                    assert isinstance(arg, list)
                    ids = _ids(url, arg)
                    if ids:
                        execute(url, f"UPDATE events SET payload = 'u{version}-' || id, updated_at = now() "
                                     f"WHERE id IN ({', '.join(map(str, ids))})")
                elif kind == "tie":
                    # Rows older than the newest stamp get exactly that stamp: a real change (their own
                    # watermark moves forward) that ties with rows the lake may already hold.
                    assert isinstance(arg, list)
                    ids = _ids(url, arg, "updated_at < (SELECT max(updated_at) FROM events)")
                    if ids:
                        execute(url, f"UPDATE events SET payload = 't{version}-' || id, "
                                     "updated_at = (SELECT max(updated_at) FROM events) "
                                     f"WHERE id IN ({', '.join(map(str, ids))})")
                else:
                    rep.sync("events")
                    assert_converged(rep, url, count=step == len(ops))
