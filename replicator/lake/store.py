"""Opening the lake by URL, and the lake on a local (or mounted) disk.

`open_store` picks the implementation once, from the URL's scheme; everything after it speaks to the
`LakeStore` protocol (lake/base.py). The S3 implementation lives in lake/s3.py.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import ConfigError
from .base import LakeStore
from .errors import lake_error
from .s3 import S3Client, S3Store, s3_filesystem

__all__ = ["LakeStore", "LocalStore", "S3Store", "lake_error", "open_store"]


@dataclass(kw_only=True, eq=False)
class LocalStore(LakeStore):
    """A lake in a local folder: renames are cheap and atomic, files are complete once closed."""

    parallel_moves = False  # a rename is a metadata update; threads would only contend for the disk
    uploads_on_close = False

    def uri(self, path: str) -> str:
        return path

    def _make_parent(self, path: str) -> None:
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def output_stream(self, path: str) -> Any:
        try:
            self._make_parent(path)
            return self.fs.open_output_stream(path)
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("write", path, exc) from exc

    def create_exclusive(self, path: str, data: bytes) -> bool:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link() fails if `path` exists, so the complete file appears atomically or not at all.
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)


def open_store(url: str, *, s3_client: S3Client | None = None) -> LakeStore:
    """A store for `s3://bucket/prefix`, `file:///abs/path` or an absolute local folder.

    An S3 store uses `s3_client` (a boto3 S3 client) when given, else builds its own from the AWS_*
    environment on first use; its pyarrow FileSystem is built from the same environment now.
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"lake.url: {url!r} has no bucket; write s3://bucket/prefix")
        root = "/".join(p for p in (parsed.netloc, parsed.path.strip("/")) if p)
        return S3Store(fs=s3_filesystem(), root=root, url=url, bucket=parsed.netloc, client=s3_client)
    if parsed.scheme == "file":
        return LocalStore(fs=pafs.LocalFileSystem(), root=os.path.abspath(parsed.path), url=url)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return LocalStore(fs=pafs.LocalFileSystem(), root=os.path.abspath(url), url=url)
    raise ConfigError(
        f"lake.url: unknown scheme {parsed.scheme!r} in {url!r}; use s3://bucket/prefix, file:///path or a folder path"
    )
