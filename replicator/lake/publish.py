"""After a manifest is created: move its staged parts into the Hive layout, retire superseded files.

Both steps are idempotent and driven by the latest manifest, so a run that died half-way through
is finished by the next run before it reads anything.
"""

from __future__ import annotations

import logging

from . import paths
from .manifest import Manifest
from .store import LakeStore

__all__ = ["finish_publish", "publish", "superseded_path"]

log = logging.getLogger(__name__)


def superseded_path(store: LakeStore, table: str, path: str) -> str:
    """Where a file replaced by a later full batch is kept (outside what Hive readers see)."""
    prefix = paths.join(store.root, table) + "/"
    return paths.join(store.root, table, "_superseded", path[len(prefix):])


def publish(store: LakeStore, manifest: Manifest) -> None:
    for f in manifest.files:
        if store.exists(f.staging_path):
            store.move(f.staging_path, f.path)
    if manifest.mode == "full":
        _retire_older_files(store, manifest)


def _retire_older_files(store: LakeStore, manifest: Manifest) -> None:
    keep = {f.path for f in manifest.files}
    table_root = paths.join(store.root, manifest.table)
    for folder in store.list_dir(table_root):
        if folder.base_name.startswith(("_", ".")):
            continue
        for info in store.list_files(folder.path):
            if info.path not in keep and info.path.endswith(".parquet"):
                store.move(info.path, superseded_path(store, manifest.table, info.path))


def finish_publish(store: LakeStore, latest: Manifest | None, table: str) -> None:
    """Complete an interrupted publish of the latest batch and drop staging left by dead runs."""
    if latest is not None:
        publish(store, latest)
    staging_root = paths.join(store.root, table, "_staging")
    for info in store.list_dir(staging_root):
        log.info("table %r: removing staging of an uncommitted run: %s", table, store.uri(info.path))
        store.delete_dir(info.path)
