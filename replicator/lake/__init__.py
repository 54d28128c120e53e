"""The lake: immutable Parquet parts, committed by exclusive manifests, in Hive-style partitions."""

from __future__ import annotations

from .lease import Lease, acquire_lease
from .manifest import DataFile, Manifest, commit_manifest, latest_manifest, list_manifest_seqs, load_manifest
from .reader import active_manifests, current_state, latest_in_window, latest_per_key, read_files
from .store import LakeStore, open_store
from .writer import BatchWriter

__all__ = [
    "BatchWriter", "DataFile", "LakeStore", "Lease", "Manifest", "acquire_lease", "active_manifests",
    "commit_manifest", "current_state", "latest_in_window", "latest_manifest", "latest_per_key",
    "list_manifest_seqs", "load_manifest", "open_store", "read_files",
]
