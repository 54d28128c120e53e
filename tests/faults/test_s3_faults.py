"""S3 misbehaving under a sync: throttling, server errors and dropped connections, through a fault proxy.

The lake is on moto over HTTP; AWS_ENDPOINT_URL points at `s3proxy.FaultProxy` in front of it, for both
of the library's S3 clients (boto3 for uploads and the conditional manifest create, pyarrow for
listing, reading and moving). botocore's backoff is shortened in-process so retries stay fast;
pyarrow's (C++) is not, so persistent faults on pyarrow requests cost a few seconds each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.retries.standard import ExponentialBackoff

from replicator import Replicator
from replicator.errors import LakeError, ReplicatorError
from replicator.lake import list_manifest_seqs, load_manifest

from .common import (
    assert_converged,
    assert_only_committed_visible,
    create_events,
    insert_rows,
    repeated_row_versions,
    update_rows,
    write_project,
)
from .s3proxy import FaultProxy, FaultRule

pytestmark = pytest.mark.integration


@pytest.fixture()
def proxy(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint, seed=20261129) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
        yield p


def _project(tmp_path: Path, source: str, lake: str, warehouse: str) -> Path:
    # A long lease: a failed run releases it anyway, and renewals would add PUTs the faults hit at random.
    return write_project(tmp_path / "project", source=source, lake=lake, warehouse=warehouse, lease_ttl="10m",
                         row_group_rows=100, file_max_rows=200)


def _sync(project: Path) -> ReplicatorError | None:
    """One in-process sync with a fresh Replicator (its pyarrow filesystem reads AWS_ENDPOINT_URL)."""
    with Replicator.from_path(project) as rep:
        try:
            rep.sync("events")
        except ReplicatorError as exc:
            return exc
    return None


def _is_throttle_or_5xx(exc: BaseException) -> bool:
    text = str(exc)
    return any(m in text for m in ("SlowDown", "SLOW_DOWN", "503", "InternalError", "INTERNAL_FAILURE", "500"))


def _assert_history_clean(rep: Replicator) -> None:
    """Batches 1..n with no gap, each from its own run, and no row version committed twice."""
    seqs = list_manifest_seqs(rep.lake, "events")
    assert seqs == list(range(1, len(seqs) + 1))
    runs = [load_manifest(rep.lake, "events", s).run_id for s in seqs]
    assert len(set(runs)) == len(runs)
    assert repeated_row_versions(rep) == 0


def test_random_slowdowns_on_puts_retry_or_fail_retriably(tmp_path: Path, pg_url: str, s3_lake: str,
                                                           duckdb_url: str, proxy: FaultProxy) -> None:
    create_events(pg_url)
    insert_rows(pg_url, 1, 400)
    project = _project(tmp_path, pg_url, s3_lake, duckdb_url)
    proxy.add(FaultRule(action="503", method="PUT", share=0.3))
    outcomes = []
    for step in range(3):
        if step:
            update_rows(pg_url, 50 * step, 50 * step + 99, f"v{step + 1}")
            insert_rows(pg_url, 400 + 100 * step - 99, 400 + 100 * step)
        error = _sync(project)
        outcomes.append(error)
        if error is not None:
            assert isinstance(error, LakeError), f"not a lake error: {error!r}"
            if _is_throttle_or_5xx(error):
                assert error.retriable, f"a 503 SlowDown surfaced as a permanent error: {error}"
        with Replicator.from_path(project) as rep:
            assert_only_committed_visible(rep)
    assert len(proxy.faults("503")) >= 3  # the faults did happen (and were retried or surfaced)

    proxy.clear()
    assert _sync(project) is None
    with Replicator.from_path(project) as rep:
        assert_converged(rep, pg_url)
        _assert_history_clean(rep)


# (what fails, the rule, the answer) -> the sync must fail with a retriable LakeError, then converge.
PERSISTENT = [
    pytest.param("part upload (boto3)", dict(method="PUT", path=r"/_staging/"), "503", id="upload-503"),
    pytest.param("manifest create (boto3)", dict(method="PUT", path=r"/_manifests/"), "500", id="manifest-500"),
    pytest.param("publish move (pyarrow CopyObject)", dict(method="PUT", header="x-amz-copy-source"), "503",
                 id="move-503"),
    pytest.param("listing (pyarrow ListObjectsV2)", dict(method="GET", path=r"list-type=2"), "500", id="list-500"),
]


@pytest.mark.parametrize(("what", "match", "answer"), PERSISTENT)
def test_persistent_5xx_is_a_retriable_lake_error(what: str, match: dict, answer: str, tmp_path: Path, pg_url: str,
                                                  s3_lake: str, duckdb_url: str, proxy: FaultProxy,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # One retry, not four: pyarrow's (C++) backoff cannot be shortened from here, and four of its
    # retries of a persistent fault cost about 10 s; what is asserted is the error after the last one.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    create_events(pg_url)
    insert_rows(pg_url, 1, 300)
    project = _project(tmp_path, pg_url, s3_lake, duckdb_url)
    assert _sync(project) is None
    update_rows(pg_url, 1, 100, "v2")
    insert_rows(pg_url, 301, 400)

    proxy.add(FaultRule(action=answer, **match))
    error = _sync(project)
    assert error is not None, f"the sync succeeded although every {what} request got {answer}"
    assert isinstance(error, LakeError), f"{what}: not a LakeError: {error!r}"
    assert error.retriable, f"{what}: {answer} surfaced as a permanent error ({type(error).__name__}): {error}"
    proxy.clear()
    with Replicator.from_path(project) as rep:
        assert_only_committed_visible(rep)

    assert _sync(project) is None
    with Replicator.from_path(project) as rep:
        assert_converged(rep, pg_url)
        _assert_history_clean(rep)
        assert list_manifest_seqs(rep.lake, "events") == [1, 2]


# (what, the rule that answers its first request with a 503 once): each S3 client honours AWS_MAX_ATTEMPTS.
ONE_503 = [
    pytest.param(dict(method="PUT", path=r"/_staging/"), id="boto3-upload"),
    pytest.param(dict(method="GET", path=r"list-type=2"), id="pyarrow-listing"),
]


@pytest.mark.parametrize("match", ONE_503)
def test_aws_max_attempts_sets_the_retries_of_both_s3_clients(match: dict, tmp_path: Path, pg_url: str,
                                                              s3_lake: str, duckdb_url: str, proxy: FaultProxy,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One 503: retried by default (5 attempts); with AWS_MAX_ATTEMPTS=1 it fails the sync, retriably, and the
    next sync converges."""
    create_events(pg_url)
    insert_rows(pg_url, 1, 300)
    project = _project(tmp_path, pg_url, s3_lake, duckdb_url)
    proxy.add(FaultRule(action="503", times=1, **match))
    assert _sync(project) is None  # the default retried it
    assert len(proxy.faults("503")) == 1

    insert_rows(pg_url, 301, 400)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    proxy.clear()
    proxy.add(FaultRule(action="503", times=1, **match))
    error = _sync(project)
    assert isinstance(error, LakeError) and error.retriable, f"one 503 with no retry allowed: {error!r}"
    assert len(proxy.faults("503")) == 2
    assert _sync(project) is None
    with Replicator.from_path(project) as rep:
        assert_converged(rep, pg_url)
        _assert_history_clean(rep)


@pytest.mark.parametrize(("action", "times"), [("drop", 1), ("drop_after", 1), ("drop_after", None)],
                         ids=["drop-before-once", "drop-after-once", "drop-after-always"])
def test_dropped_connection_on_the_manifest_put_never_commits_twice(
    action: str, times: int | None, tmp_path: Path, mysql_url: str, s3_lake: str, duckdb_url: str,
    proxy: FaultProxy,
) -> None:
    """`drop_after` forwards the conditional PUT (the manifest is created) and then kills the connection:
    the run cannot know it committed. Retries meet 412 and read the manifest back (times=1), or keep
    failing (always); either way the next run must treat the batch as committed, not commit it again."""
    create_events(mysql_url)
    insert_rows(mysql_url, 1, 300)
    project = _project(tmp_path, mysql_url, s3_lake, duckdb_url)
    assert _sync(project) is None
    update_rows(mysql_url, 1, 100, "v2")
    insert_rows(mysql_url, 301, 400)

    proxy.add(FaultRule(action=action, method="PUT", path=r"/_manifests/", times=times))
    error = _sync(project)
    assert proxy.faults(action), "the manifest PUT was not hit"
    if error is not None:
        assert isinstance(error, LakeError) and error.retriable, f"unclear failure: {error!r}"
    proxy.clear()
    with Replicator.from_path(project) as rep:
        assert_only_committed_visible(rep)
        committed = list_manifest_seqs(rep.lake, "events")
    if error is None:
        assert committed == [1, 2]

    assert _sync(project) is None
    with Replicator.from_path(project) as rep:
        assert list_manifest_seqs(rep.lake, "events") == [1, 2]
        assert_converged(rep, mysql_url)
        _assert_history_clean(rep)
