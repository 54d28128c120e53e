"""`each_table`: tables side by side, each table's error its own, nothing started after the caller stops."""

from __future__ import annotations

import threading
import time

import pytest

from replicator.errors import SourceUnavailable
from replicator.runner import each_table


def test_up_to_workers_tables_run_at_once() -> None:
    meeting = threading.Barrier(3, timeout=10)  # passes only when three tables are under way together
    running = 0
    most = 0
    lock = threading.Lock()

    def work(name: str) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if name in ("a", "b", "c"):
            meeting.wait()
        with lock:
            running -= 1
        return name.upper()

    results = dict(each_table(["a", "b", "c", "d", "e", "f"], work, workers=3))
    assert results == {n: n.upper() for n in "abcdef"}
    assert most == 3


def test_results_come_as_tables_finish_and_errors_stay_with_their_table() -> None:
    slow_may_end = threading.Event()

    def work(name: str) -> str:
        if name == "slow":
            assert slow_may_end.wait(10)
        if name == "broken":
            raise SourceUnavailable("source 'app': cannot connect")
        return name

    seen = []
    for name, outcome in each_table(["slow", "broken", "fast"], work, workers=3):
        seen.append(name)
        if len(seen) == 2:
            slow_may_end.set()  # the two quick tables were reported while the slow one still ran
        if name == "broken":
            assert isinstance(outcome, SourceUnavailable) and outcome.retriable
        else:
            assert outcome == name
    assert sorted(seen[:2]) == ["broken", "fast"] and seen[2] == "slow"


def test_one_worker_runs_tables_in_order_in_the_callers_thread() -> None:
    threads = []
    assert [n for n, _ in each_table(["b", "a", "c"], lambda n: threads.append(threading.get_ident()), 1)] == [
        "b", "a", "c"]
    assert set(threads) == {threading.get_ident()}


def test_a_bug_stops_the_run_and_tables_not_started_never_start() -> None:
    started = []
    lock = threading.Lock()

    def work(name: str) -> None:
        with lock:
            started.append(name)
        if name == "t0":
            raise KeyError("a bug, not a table's failure")
        time.sleep(0.05)

    with pytest.raises(KeyError):
        for _ in each_table([f"t{i}" for i in range(50)], work, workers=2):
            pass
    assert "t0" in started and len(started) < 50
