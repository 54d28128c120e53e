"""The lake on S3 (or MinIO, moto): pyarrow's S3FileSystem for listing, reading and moving; a boto3
client, owned by the store, for uploads and the conditional create that commits a manifest.

Both are built from the standard AWS_* environment unless the caller injects them, so every store
(and so every `Replicator`) sees the endpoint and credentials current when it was opened.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import pyarrow.fs as pafs

from ..errors import ConfigError
from .base import LakeStore
from .errors import boto_error, s3_exists

__all__ = ["S3Client", "S3Store", "SpooledUpload", "aws_endpoint", "aws_max_attempts", "aws_region", "boto3_client",
           "s3_filesystem"]


class S3Client(Protocol):
    """The two calls the lake makes of a boto3 S3 client."""

    def put_object(self, **kwargs: Any) -> Any: ...

    def upload_file(self, Filename: str, Bucket: str, Key: str, *args: Any, **kwargs: Any) -> Any: ...  # noqa: N803


def aws_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def aws_endpoint() -> str | None:
    """The S3 endpoint of an S3-compatible store (MinIO, moto), as boto3 reads it; None: AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


_DEFAULT_MAX_ATTEMPTS = 5


def aws_max_attempts() -> int:
    """Attempts per S3 request, retries included, for both clients: AWS_MAX_ATTEMPTS (the AWS SDKs' and
    boto3's own variable) or 5. Retries back off exponentially (the AWS SDKs' standard retry mode)."""
    raw = os.environ.get("AWS_MAX_ATTEMPTS")
    if raw is None or not raw.strip():
        return _DEFAULT_MAX_ATTEMPTS
    try:
        attempts = int(raw)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise ConfigError(f"environment variable AWS_MAX_ATTEMPTS is {raw!r}: set it to a whole number of attempts "
                          f"per S3 request (1 or more, retries included), or unset it for {_DEFAULT_MAX_ATTEMPTS}")
    return attempts


def s3_filesystem() -> pafs.S3FileSystem:
    """Credentials, region and endpoint from AWS_* variables, so MinIO and moto work unchanged."""
    kwargs: dict[str, object] = {}
    region = aws_region()
    if region:
        kwargs["region"] = region
    endpoint = aws_endpoint()
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
        # S3-compatible servers (MinIO, moto) are addressed by path, not by virtual host.
        kwargs["force_virtual_addressing"] = False
    kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=aws_max_attempts())
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def boto3_client() -> S3Client:
    """A boto3 S3 client from the AWS_* environment (boto3 reads AWS_ENDPOINT_URL itself)."""
    import boto3
    from botocore.config import Config

    # botocore's `max_attempts` key counts retries only (5 made 6 attempts); `total_max_attempts` counts as
    # AWS_MAX_ATTEMPTS and pyarrow's strategy do.
    retries = {"total_max_attempts": aws_max_attempts(), "mode": "standard"}
    client: S3Client = boto3.client("s3", config=Config(retries=retries, s3={"addressing_style": "path"}))
    return client


@dataclass(kw_only=True, eq=False)
class S3Store(LakeStore):
    """A lake under `s3://bucket/prefix`; `root` is `bucket/prefix`, as pyarrow names paths.

    `client` is built on first use when not injected: a sync that only reads never imports boto3.
    """

    bucket: str
    client: S3Client | None = None
    _client_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    parallel_moves = True  # a move is a server-side copy and a delete, bound by request latency
    uploads_on_close = True

    def s3_client(self) -> S3Client:
        """The store's boto3 client; safe to call from the writer's upload threads."""
        if self.client is None:
            # boto3 builds clients unsafely across threads, and uploads start from a pool.
            with self._client_lock:
                if self.client is None:
                    self.client = boto3_client()
        return self.client

    def uri(self, path: str) -> str:
        return f"s3://{path}"

    def output_stream(self, path: str) -> SpooledUpload:
        return SpooledUpload(path, self.s3_client())

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """PUT with If-None-Match: * so exactly one writer creates `path`; False if it existed."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, key = path.partition("/")
        try:
            self.s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            return True
        except (ClientError, BotoCoreError) as exc:
            if s3_exists(exc):
                return False
            raise boto_error(f"create s3://{path}", exc) from exc


class SpooledUpload:
    """A write-only file that is uploaded to S3 by `client` when closed.

    Parts are spooled to a local temporary file (memory stays flat), then sent with boto3's managed
    transfer: parallel multipart for big files, a plain PUT for small ones. The object appears only
    when the upload completes, so no reader ever sees half of it.
    """

    def __init__(self, path: str, client: S3Client) -> None:
        self.path = path
        self._client = client
        self._file = tempfile.NamedTemporaryFile(prefix="replicator-", suffix=".part", delete=False)  # noqa: SIM115
        self.closed = False

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._file.close()
        try:
            bucket, _, key = self.path.partition("/")
            self._client.upload_file(self._file.name, bucket, key, Config=_transfer_config())
        except Exception as exc:
            raise boto_error(f"upload s3://{self.path}", exc) from exc
        finally:
            os.unlink(self._file.name)

    def discard(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()
            os.unlink(self._file.name)

    def __enter__(self) -> SpooledUpload:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=4)
