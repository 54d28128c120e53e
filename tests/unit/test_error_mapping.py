"""Each boundary's error table: driver error -> our class and `retriable`, by code and type, never by path.

The tables themselves are tested without a server. Where a real error is cheap (a closed port, moto's
403/404 over HTTP, a wrong password on MariaDB, an unknown PostgreSQL database, a DuckDB file locked by
another process) it is produced for real; those tests are marked `integration`.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import psycopg2
import pymysql
import pytest
import sqlalchemy as sa

from replicator.config import SourceConfig
from replicator.driver_errors import Outcome, libpq_refusal, mysql_errno_outcome, sqlstate_outcome
from replicator.errors import (
    LakeError,
    LakeUnavailable,
    SourceError,
    SourceRefused,
    SourceUnavailable,
    WarehouseError,
    WarehouseUnavailable,
)
from replicator.lake import errors as lake_errors
from replicator.sources import errors as source_errors
from replicator.sources.arrow import reader_error
from replicator.sources.base import source_error
from replicator.sources.mysql import MySQLSource
from replicator.sources.postgres import PostgresSource
from replicator.warehouse import errors as warehouse_errors
from replicator.warehouse.duckdb import DuckDBWarehouse

# Paths a digit search would misread as a status: batch 500's part and manifest.
PART_500 = "lake-b/lake/rides/dt=2026-11-29/part-00000500-3f2a9c1d-00001.parquet"
MANIFEST_500 = "lake-b/lake/rides/_manifests/00000000000000000500.json"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client_error(code: str, status: int, op: str = "PutObject") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, op)


def _arrow_s3_error(key: str, name: str) -> OSError:
    """What pyarrow raises for an S3 failure (the format seen from moto and the fault proxy)."""
    return OSError(f"When reading information for key '{key}' in bucket 'lake-b': AWS Error {name} "
                   "during HeadObject operation: No response body.")


# -- lake: boto3 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "status", "cls"), [
    ("AccessDenied", 403, LakeError), ("InvalidAccessKeyId", 403, LakeError), ("NoSuchBucket", 404, LakeError),
    ("SlowDown", 503, LakeUnavailable), ("InternalError", 500, LakeUnavailable),
    ("RequestTimeout", 400, LakeUnavailable), ("ServiceUnavailable", 503, LakeUnavailable),
    ("", 502, LakeUnavailable), ("", 429, LakeUnavailable), ("SomethingNew", 400, LakeError),
])
def test_boto_client_errors_by_code_then_status(code: str, status: int, cls: type[LakeError]) -> None:
    assert lake_errors.boto_class(_client_error(code, status)) is cls


def test_access_denied_on_batch_500_is_permanent_through_every_s3_client() -> None:
    denied = _client_error("AccessDenied", 403)
    assert not lake_errors.boto_class(denied).retriable
    for key in (PART_500, MANIFEST_500):
        err = lake_errors.lake_error("read", key, _arrow_s3_error(key, "ACCESS_DENIED"))
        assert type(err) is LakeError and not err.retriable, err
        headless = lake_errors.lake_error("read", key, _arrow_s3_error(key, "UNKNOWN (HTTP status 403)"))
        assert not headless.retriable, headless


def test_slowdown_and_5xx_are_retriable_through_every_s3_client() -> None:
    assert lake_errors.boto_class(_client_error("SlowDown", 503)).retriable
    for name in ("SLOW_DOWN", "INTERNAL_FAILURE", "SERVICE_UNAVAILABLE", "THROTTLING", "UNKNOWN (HTTP status 503)",
                 "UNKNOWN (HTTP status 500)"):
        assert lake_errors.lake_error("list", "lake-b/lake/rides", _arrow_s3_error(PART_500, name)).retriable, name


def test_an_upload_failure_is_classified_by_the_client_error_boto3_wraps() -> None:
    from boto3.exceptions import S3UploadFailedError

    for inner, retriable in ((_client_error("AccessDenied", 403), False), (_client_error("SlowDown", 503), True)):
        try:
            try:
                raise inner
            except botocore.exceptions.ClientError as exc:
                raise S3UploadFailedError(f"Failed to upload /tmp/x to {PART_500}: {exc}")  # noqa: B904 - as boto3 does
        except S3UploadFailedError as wrapped:
            assert lake_errors.boto_class(wrapped).retriable is retriable


@pytest.mark.parametrize("exc", [
    botocore.exceptions.ConnectionClosedError(endpoint_url="http://s3"),
    botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"),
    botocore.exceptions.ReadTimeoutError(endpoint_url="http://s3"),
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
], ids=type)
def test_a_dropped_connection_is_retriable(exc: BaseException) -> None:
    assert lake_errors.boto_class(exc) is LakeUnavailable
    if type(exc) is ConnectionResetError:  # what the local filesystem path would see
        assert lake_errors.lake_class(exc) is LakeUnavailable


def test_missing_credentials_are_permanent() -> None:
    assert lake_errors.boto_class(botocore.exceptions.NoCredentialsError()) is LakeError


def test_conditional_create_conflicts_mean_the_object_exists() -> None:
    assert lake_errors.s3_exists(_client_error("PreconditionFailed", 412))
    assert lake_errors.s3_exists(_client_error("ConditionalRequestConflict", 409))
    assert not lake_errors.s3_exists(_client_error("AccessDenied", 403))


# -- lake: pyarrow --------------------------------------------------------------------------------------------
def test_pyarrow_codes_are_read_only_from_the_aws_frame() -> None:
    assert lake_errors.arrow_s3_codes(_arrow_s3_error(PART_500, "ACCESS_DENIED")) == ("ACCESS_DENIED", None)
    assert lake_errors.arrow_s3_codes(_arrow_s3_error(MANIFEST_500, "UNKNOWN (HTTP status 503)")) == ("UNKNOWN", 503)
    # A message naming a path with 500/503 in it, but no AWS frame, decides nothing.
    assert lake_errors.arrow_s3_codes(OSError(f"cannot open {PART_500}: 503 500")) == (None, None)
    assert lake_errors.lake_class(OSError(f"cannot open {PART_500}: 503")) is LakeError


def test_network_failures_seen_by_pyarrow_are_retriable() -> None:
    exc = OSError("When listing objects under key 'x/' in bucket 'b': AWS Error NETWORK_CONNECTION during "
                  "ListObjectsV2 operation: curlCode: 56, Failure when receiving data from the peer")
    assert lake_errors.lake_class(exc) is LakeUnavailable


def test_local_errors_by_errno() -> None:
    assert lake_errors.lake_class(OSError(errno.ENOSPC, "No space left on device")) is LakeError
    assert lake_errors.lake_class(PermissionError(errno.EACCES, "Permission denied")) is LakeError
    assert lake_errors.lake_not_found(FileNotFoundError(errno.ENOENT, "Path does not exist"))
    assert lake_errors.lake_not_found(_arrow_s3_error(PART_500, "NO_SUCH_KEY"))
    assert not lake_errors.lake_not_found(_arrow_s3_error(PART_500, "ACCESS_DENIED"))


# -- source ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sqlstate", "outcome"), [
    ("28P01", Outcome.REFUSED), ("28000", Outcome.REFUSED), ("3D000", Outcome.REFUSED),
    ("57P01", Outcome.UNAVAILABLE), ("57014", Outcome.UNAVAILABLE), ("08006", Outcome.UNAVAILABLE),
    ("40001", Outcome.UNAVAILABLE), ("55P03", Outcome.UNAVAILABLE), ("42501", Outcome.FAILED), ("42P01", None),
])
def test_sqlstate_table(sqlstate: str, outcome: Outcome | None) -> None:
    assert sqlstate_outcome(sqlstate) is outcome


def test_postgres_authentication_failure_is_permanent() -> None:
    assert source_errors.source_class(sqlstate_outcome("28P01") or Outcome.FAILED, "connect") is SourceRefused
    assert not SourceRefused.retriable
    # libpq gives psycopg2 no SQLSTATE for a refused connection; this is the text it gives instead.
    refused = psycopg2.OperationalError('connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
                                        'authentication failed for user "etl"\n')
    err = source_error("app", "connect", sa.exc.OperationalError("connect", {}, refused))
    assert type(err) is SourceRefused and "fix the credentials" in str(err)
    assert warehouse_errors.postgres_class(refused, "connect") is WarehouseError


def test_libpq_refusals() -> None:
    assert libpq_refusal('FATAL:  role "x" does not exist')
    assert libpq_refusal('FATAL:  database "x" does not exist')
    assert not libpq_refusal("connection to server at \"127.0.0.1\", port 1 failed: Connection refused")


@pytest.mark.parametrize(("code", "outcome"), [
    (2003, Outcome.UNAVAILABLE), (2013, Outcome.UNAVAILABLE), (1927, Outcome.UNAVAILABLE),
    (1045, Outcome.REFUSED), (1049, Outcome.REFUSED), (1146, None),
])
def test_mysql_errno_table(code: int, outcome: Outcome | None) -> None:
    assert mysql_errno_outcome(code) is outcome


def test_mysql_cannot_connect_is_retriable() -> None:
    orig = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] ...)")
    assert source_errors.dbapi_outcome(orig) is Outcome.UNAVAILABLE
    denied = pymysql.err.OperationalError(1045, "Access denied for user 'root'@'127.0.0.1' (using password: YES)")
    assert source_errors.dbapi_outcome(denied) is Outcome.REFUSED
    assert source_errors.dbapi_outcome(pymysql.err.ProgrammingError(1146, "Table 't' doesn't exist")) is Outcome.FAILED


# The texts connectorx raised against MariaDB 10.11 (wrong password, closed port, missing table).
CONNECTORX = [
    ("timed out waiting for connection: MySqlError { ERROR 1045 (28000): Access denied for user 'root'@'127.0.0.1' "
     "(using password: YES) }", SourceRefused),
    ("timed out waiting for connection: DriverError { Could not connect to address `127.0.0.1:1': Connection refused "
     "(os error 111) }", SourceUnavailable),
    ("MySqlError { ERROR 1146 (42S02): Table 'app.part_500' doesn't exist }", SourceError),
    ("MySqlError { ERROR 1927 (70100): Connection was killed }", SourceUnavailable),
    ("IoError { Connection reset by peer (os error 104) }", SourceUnavailable),
    ("CodecError { bad packet }", SourceUnavailable),
]


@pytest.mark.parametrize(("text", "cls"), CONNECTORX)
def test_connectorx_errors(text: str, cls: type[SourceError]) -> None:
    err = reader_error("app", RuntimeError(text))
    assert type(err) is cls and err.retriable is cls.retriable


def test_connection_reset_is_retriable_at_the_source() -> None:
    assert type(reader_error("app", ConnectionResetError(errno.ECONNRESET, "reset"))) is SourceUnavailable


# -- warehouse ------------------------------------------------------------------------------------------------
def test_duckdb_table() -> None:
    import duckdb

    assert warehouse_errors.duckdb_class(duckdb.IOException("lock"), "connect") is WarehouseUnavailable
    assert warehouse_errors.duckdb_class(duckdb.CatalogException("x"), "connect") is WarehouseError
    assert warehouse_errors.duckdb_class(duckdb.IOException("x"), "use") is WarehouseError


# -- real errors ----------------------------------------------------------------------------------------------
@pytest.fixture()
def s3_denied(s3_lake: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto checks credentials from now on; the test's access key is unknown to it: real 403s over HTTP."""
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    yield s3_lake


@pytest.mark.integration
def test_real_403_on_batch_500_is_permanent(s3_denied: str) -> None:
    from replicator.lake.store import open_store

    store = open_store(s3_denied)
    part, manifest = f"{store.root}/rides/dt=2026-11-29/part-00000500-x-00001.parquet", \
        f"{store.root}/rides/_manifests/00000000000000000500.json"
    failures: list[BaseException] = []
    for call in (lambda: store.read_bytes(manifest), lambda: store.list_files(f"{store.root}/rides"),
                 lambda: store.create_exclusive(manifest, b"{}"), lambda: store.write_bytes(part, b"x")):
        with pytest.raises(LakeError) as caught:
            call()
        failures.append(caught.value)
    for failure in failures:
        assert not failure.retriable, f"a 403 became retriable: {failure}"


@pytest.mark.integration
def test_real_404_is_not_found(s3_lake: str) -> None:
    from replicator.lake.store import open_store

    store = open_store(s3_lake)
    with pytest.raises(FileNotFoundError):
        store.read_bytes(f"{store.root}/rides/_manifests/00000000000000000500.json")
    store.delete(f"{store.root}/rides/part-00000500.parquet")  # a missing file is already deleted


def test_real_closed_ports_are_retriable() -> None:
    port = _closed_port()
    for source in (PostgresSource("pg", SourceConfig(url=f"postgresql://postgres@127.0.0.1:{port}/x")),
                   MySQLSource("my", SourceConfig(url=f"mysql+pymysql://root@127.0.0.1:{port}/x"))):
        with pytest.raises(SourceError) as caught, source.connect():
            pass
        assert type(caught.value) is SourceUnavailable and "cannot connect" in str(caught.value), caught.value
    with pytest.raises(psycopg2.OperationalError) as raw:
        psycopg2.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=5)
    assert type(warehouse_errors.postgres_warehouse_error(raw.value, "connect")) is WarehouseUnavailable


def test_real_adbc_connect_failures() -> None:
    adbc_pg = pytest.importorskip("adbc_driver_postgresql.dbapi")
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as closed:
        adbc_pg.connect(f"postgresql://postgres@127.0.0.1:{_closed_port()}/x")
    assert type(reader_error("pg", closed.value)) is SourceUnavailable


@pytest.mark.integration
def test_real_adbc_unknown_database_is_permanent() -> None:
    adbc_pg = pytest.importorskip("adbc_driver_postgresql.dbapi")
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as caught:
        adbc_pg.connect(f"postgresql://postgres@127.0.0.1:5432/no_such_db_{uuid.uuid4().hex[:6]}")
    assert not reader_error("pg", caught.value).retriable


@pytest.mark.integration
def test_real_unknown_postgres_database_is_refused() -> None:
    url = f"postgresql://postgres@127.0.0.1:5432/no_such_db_{uuid.uuid4().hex[:6]}"
    with pytest.raises(SourceError) as caught, PostgresSource("pg", SourceConfig(url=url)).connect():
        pass
    assert type(caught.value) is SourceRefused and "fix the credentials or database" in str(caught.value)
    with pytest.raises(psycopg2.OperationalError) as raw:
        psycopg2.connect(url.replace("postgresql://", "postgresql://", 1), connect_timeout=5)
    assert type(warehouse_errors.postgres_warehouse_error(raw.value, "connect")) is WarehouseError


@pytest.mark.integration
def test_real_mariadb_wrong_password_is_refused() -> None:
    source = MySQLSource("my", SourceConfig(url=f"mysql+pymysql://root:wrong-{uuid.uuid4().hex[:6]}@127.0.0.1:3306/"))
    with pytest.raises(SourceError) as caught, source.connect():
        pass
    assert type(caught.value) is SourceRefused and not caught.value.retriable
    assert "wrong-" not in str(caught.value)


def test_real_duckdb_lock_is_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "wh.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({path!r}); print('held', flush=True); "
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseError) as caught, DuckDBWarehouse(path, "raw")._connect():
            pass
        assert type(caught.value) is WarehouseUnavailable
    finally:
        holder.communicate("", timeout=30)


# -- lake: the Iceberg catalog --------------------------------------------------------------------------------
def _sql_catalog_error(uri: str) -> BaseException:
    """What pyiceberg's SQL catalog raises when it opens `uri`."""
    from pyiceberg.catalog.sql import SqlCatalog

    with pytest.raises(Exception) as caught:
        SqlCatalog("replicator", uri=uri, init_catalog_tables="true").create_namespace_if_not_exists("lake")
    return caught.value


def test_real_unreachable_catalogs_are_retriable(tmp_path: Path) -> None:
    for uri in (f"postgresql+psycopg2://postgres@127.0.0.1:{_closed_port()}/x",
                f"sqlite:///{tmp_path / 'no-such-folder' / 'iceberg.db'}"):
        error = lake_errors.catalog_error("open the Iceberg catalog 'replicator'", _sql_catalog_error(uri))
        assert type(error) is LakeUnavailable and error.retriable, (uri, error)
        assert str(error).startswith("iceberg: cannot open the Iceberg catalog 'replicator': ")


@pytest.mark.integration
def test_real_unknown_catalog_database_is_permanent() -> None:
    uri = f"postgresql+psycopg2://postgres@127.0.0.1:5432/no_such_db_{uuid.uuid4().hex[:6]}"
    error = lake_errors.catalog_error("open", _sql_catalog_error(uri))
    assert type(error) is LakeError and not error.retriable, error


def test_catalog_errors_by_sqlstate_then_type() -> None:
    from pyiceberg.exceptions import CommitFailedException

    class _PgError(Exception):
        pgcode = "40001"  # serialization_failure: another publisher's commit

    denied = type("_Denied", (Exception,), {"pgcode": "42501"})()
    assert lake_errors.catalog_class(sa.exc.OperationalError("select", {}, _PgError())) is LakeUnavailable
    assert lake_errors.catalog_class(sa.exc.OperationalError("select", {}, denied)) is LakeError
    assert lake_errors.catalog_class(sa.exc.IntegrityError("insert", {}, Exception())) is LakeError
    assert lake_errors.catalog_class(CommitFailedException("branch main has changed")) is LakeError
    assert lake_errors.catalog_class(_arrow_s3_error(PART_500, "ACCESS_DENIED")) is LakeError
    assert lake_errors.catalog_class(_arrow_s3_error(MANIFEST_500, "SLOW_DOWN")) is LakeUnavailable
