"""Run one sync and SIGKILL this process at a chosen point of the commit protocol.

    python -m tests.faults.killer <project.yml> <table> <point> [<nth>] [--full-refresh]

Exactly one library function is wrapped; on its nth call the process does
`os.kill(os.getpid(), signal.SIGKILL)` (no cleanup, no finally blocks, no atexit). If the sync finishes
without reaching the point, the process exits 3, so a test can tell "not killed" from "killed".

Points (the wrapped function, and where the kill happens):
  read             SqlSource.read: after the nth record batch was consumed (default 2)
  upload           S3: SpooledUpload.close of a staged part, before its upload; local lake:
                   BatchWriter._close_file, before the file is finished (default 2)
  before_manifest  commit_manifest as the commit unit (replicator.lake.batch) calls it, before the real one runs
  after_manifest   the same, right after the real one returned (before publish)
  mid_publish      LakeStore.move, at the start of its nth call (default 2)
  mid_retire       LakeStore.move of a file replaced by a full batch into _superseded/, at the start of
                   its nth call (default 2); reached only with --full-refresh on a table already synced
  before_load      Replicator._load (the warehouse step of a sync, after its extract and reconcile), at its start
  before_iceberg   IcebergPublisher.publish (lake.iceberg), at its start: the lake commit stands, no Iceberg table has it
  between_iceberg_tables
                   IcebergPublisher._publish_current, at its start: the change table has the batch, the
                   current-state table not
  mid_load         inside the warehouse transaction: after DuckDBWarehouse._follow_schema (which
                   then also deletes every row of the table, as a rollback must undo it) or after
                   PostgresWarehouse._copy filled the transaction's stage
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

POINTS = ("read", "upload", "before_manifest", "after_manifest", "mid_publish", "before_load", "mid_load")
"""The points every sync reaches; `mid_retire` is reached only by a full batch that replaces files."""
ICEBERG_POINTS = ("before_iceberg", "between_iceberg_tables")
"""The points a sync reaches when the project publishes to Iceberg."""
DEFAULT_NTH = {"read": 2, "upload": 2, "mid_publish": 2, "mid_retire": 2}

NOT_KILLED = 3


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Countdown:
    """Thread-safe: `hit()` is True exactly on the nth call (uploads and moves run in thread pools)."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.calls = 0
        self._lock = threading.Lock()

    def hit(self) -> bool:
        with self._lock:
            self.calls += 1
            return self.calls == self.nth


def install(point: str, nth: int, lake_is_s3: bool, warehouse: str) -> None:
    """Monkeypatch the one function of `point`."""
    count = Countdown(nth)
    if point == "read":
        from replicator.sources.base import SqlSource

        real_read = SqlSource.read

        def read(self: SqlSource, request: Any) -> Iterator[Any]:
            for i, batch in enumerate(real_read(self, request), 1):
                yield batch
                if i == nth:  # the consumer has written this batch and asks for the next one
                    die()

        SqlSource.read = read  # type: ignore[method-assign]
    elif point == "upload" and lake_is_s3:
        from replicator.lake import s3

        real_close = s3.SpooledUpload.close

        def close(self: s3.SpooledUpload) -> None:
            if not self.closed and "/_staging/" in self.path and count.hit():
                die()
            real_close(self)

        s3.SpooledUpload.close = close  # type: ignore[method-assign]
    elif point == "upload":
        from replicator.lake.writer import BatchWriter

        real_close_file = BatchWriter._close_file

        def close_file(self: BatchWriter, partition: str) -> None:
            if count.hit():
                die()
            real_close_file(self, partition)

        BatchWriter._close_file = close_file  # type: ignore[method-assign]
    elif point in ("before_manifest", "after_manifest"):
        import replicator.lake.batch as batch

        real_commit = batch.commit_manifest

        def commit_manifest(*args: Any, **kwargs: Any) -> None:
            if point == "before_manifest":
                die()
            real_commit(*args, **kwargs)
            die()

        batch.commit_manifest = commit_manifest
    elif point == "mid_publish":
        from replicator.lake.store import LakeStore

        real_move = LakeStore.move

        def move(self: LakeStore, src: str, dst: str) -> None:
            if count.hit():
                die()
            real_move(self, src, dst)

        LakeStore.move = move  # type: ignore[method-assign]
    elif point == "mid_retire":
        from replicator.lake.store import LakeStore

        real_retire = LakeStore.move

        def retire(self: LakeStore, src: str, dst: str) -> None:
            if "/_superseded/" in dst and count.hit():
                die()
            real_retire(self, src, dst)

        LakeStore.move = retire  # type: ignore[method-assign]
    elif point == "before_load":
        from replicator.runner import Replicator

        real_load = Replicator._load

        def load(self: Replicator, name: str) -> Any:
            die()
            return real_load(self, name)

        Replicator._load = load  # type: ignore[method-assign]
    elif point in ("before_iceberg", "between_iceberg_tables"):
        from replicator.iceberg import IcebergPublisher

        name = "publish" if point == "before_iceberg" else "_publish_current"
        real = getattr(IcebergPublisher, name)

        def killed(self: IcebergPublisher, *args: Any, **kwargs: Any) -> Any:
            die()
            return real(self, *args, **kwargs)

        setattr(IcebergPublisher, name, killed)
    elif point == "mid_load" and warehouse.startswith("duckdb"):
        from replicator.warehouse.duckdb import DuckDBWarehouse

        real_follow = DuckDBWarehouse._follow_schema

        def follow_schema(self: DuckDBWarehouse, con: Any, target: str, *args: Any, **kwargs: Any) -> None:
            real_follow(self, con, target, *args, **kwargs)  # the batch is staged inside the open transaction
            con.execute(f"DELETE FROM {target}")  # damage that only a rollback undoes
            die()

        DuckDBWarehouse._follow_schema = follow_schema  # type: ignore[method-assign]
    elif point == "mid_load":
        from replicator.warehouse.postgres import PostgresWarehouse

        real_copy = PostgresWarehouse._copy

        def copy(self: PostgresWarehouse, cur: Any, *args: Any, **kwargs: Any) -> None:
            real_copy(self, cur, *args, **kwargs)  # the batch is COPied into the transaction's stage
            die()

        PostgresWarehouse._copy = copy  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown point {point!r}; use one of {', '.join(POINTS)}, mid_retire, "
                         f"{', '.join(ICEBERG_POINTS)}")


def main(argv: list[str]) -> int:
    full_refresh = "--full-refresh" in argv
    argv = [a for a in argv if a != "--full-refresh"]
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    project, table, point = argv[:3]
    nth = int(argv[3]) if len(argv) == 4 else DEFAULT_NTH.get(point, 1)

    from replicator import Replicator

    rep = Replicator.from_path(project)
    config = rep.project.config
    install(point, nth, config.lake.url.startswith("s3://"), config.warehouse.url)
    with rep:
        result = rep.sync(table, full_refresh=full_refresh)
    print(f"not killed: point {point!r} (nth {nth}) was not reached; batch {result.extract.batch_id}")
    return NOT_KILLED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
