"""After a manifest is created: move its staged parts into the Hive layout, retire superseded files.

Both steps are idempotent and driven by manifests, so a publish a run died in is finished later by
`recovery.recover`, before anything reads or commits the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from . import paths
from .manifest import Manifest
from .store import LakeStore

__all__ = ["publish", "superseded_path"]

_PARALLEL_MOVES = 8


def superseded_path(store: LakeStore, table: str, relative: str) -> str:
    """Where a file replaced by a later full batch is kept (outside what Hive readers see)."""
    return paths.join(store.root, table, "_superseded", relative)


def _move_all(store: LakeStore, pairs: Sequence[tuple[str, str]]) -> None:
    if len(pairs) <= 1 or not store.parallel_moves:
        for src, dst in pairs:
            store.move(src, dst)
        return
    # Independent server-side copies: doing several at once hides request latency.
    with ThreadPoolExecutor(max_workers=_PARALLEL_MOVES) as pool:
        for future in [pool.submit(store.move, src, dst) for src, dst in pairs]:
            future.result()


def publish(store: LakeStore, manifest: Manifest, retired: Iterable[Manifest] = (), *, staged: set[str] | None = None) -> None:
    """Move the manifest's staged files into place; for a full batch, retire the files of `retired`.

    `staged` is the set of staging paths still present (None: all of them, right after a commit).
    """
    def full(relative: str) -> str:
        return paths.in_table(store.root, manifest.table, relative)

    moves = [(full(f.staging_path), full(f.path)) for f in manifest.files
             if staged is None or full(f.staging_path) in staged]
    _move_all(store, moves)
    if manifest.mode == "full":
        keep = {f.path for f in manifest.files}
        old = [f.path for m in retired if m.seq < manifest.seq for f in m.files if f.path not in keep]
        if staged is not None and old:  # finishing a publish: some may be retired already
            found = store.existing([full(p) for p in old])
            old = [p for p in old if full(p) in found]
        _move_all(store, [(full(p), superseded_path(store, manifest.table, p)) for p in old])
