"""The lake's store protocol: one behavioural test run against LocalStore and S3Store (moto over HTTP),
the S3 store's own boto3 client (injected, or built once per store), and an import graph without cycles."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import botocore.exceptions
import pyarrow.fs as pafs
import pytest

from replicator.errors import ConfigError, LakeError
from replicator.lake import s3
from replicator.lake.base import LakeStore
from replicator.lake.store import LocalStore, open_store

LAKE_PACKAGE = Path(__file__).resolve().parents[2] / "replicator" / "lake"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LakeStore:
    url = str(tmp_path / "lake") if request.param == "local" else request.getfixturevalue("s3_lake")
    return open_store(url)


def test_store_is_a_lake_store_with_stated_capabilities(store: LakeStore) -> None:
    assert isinstance(store, LakeStore)
    assert isinstance(store.parallel_moves, bool) and isinstance(store.uploads_on_close, bool)
    path = f"{store.root}/t/x.json"
    assert store.uri(path).endswith(path)


def test_bytes_round_trip_and_missing_reads(store: LakeStore) -> None:
    path = f"{store.root}/t/dt=2026-01-01/a.bin"
    store.write_bytes(path, b"abc")
    assert store.read_bytes(path) == b"abc"
    assert store.exists(path)
    with pytest.raises(FileNotFoundError):
        store.read_bytes(f"{store.root}/t/missing.bin")
    assert store.existing([path, f"{store.root}/t/missing.bin"]) == {path}


def test_exclusive_create_has_one_winner(store: LakeStore) -> None:
    path = f"{store.root}/t/_manifests/00000000000000000001.json"
    assert store.create_exclusive(path, b"first")
    assert not store.create_exclusive(path, b"second")
    assert store.read_bytes(path) == b"first"


def test_listing_moving_and_deleting(store: LakeStore) -> None:
    table = f"{store.root}/t"
    staged, final = f"{table}/_staging/run/dt=x/p.parquet", f"{table}/dt=x/p.parquet"
    store.write_bytes(staged, b"p")
    store.write_bytes(f"{table}/_manifests/1.json", b"{}")
    assert {i.path for i in store.list_files(table)} == {staged, f"{table}/_manifests/1.json"}
    assert f"{table}/_manifests" in {i.path for i in store.list_dir(table)}
    store.move(staged, final)
    assert not store.exists(staged) and store.read_bytes(final) == b"p"
    store.delete(final)
    store.delete(final)  # deleting what is gone is not an error
    assert not store.exists(final)
    store.delete_dir(f"{table}/_staging")
    store.delete_dir(f"{table}/_staging")
    assert f"{table}/_manifests/1.json" in {i.path for i in store.list_files(table)}
    assert not any("/_staging/" in i.path for i in store.list_files(table))


def test_output_appears_only_when_closed_and_never_after_a_failure(store: LakeStore) -> None:
    path, failed = f"{store.root}/t/out.bin", f"{store.root}/t/failed.bin"
    stream = store.output_stream(path)
    stream.write(b"12345")
    assert stream.tell() == 5
    stream.close()
    assert store.read_bytes(path) == b"12345"
    with pytest.raises(RuntimeError), store.open_output(failed) as out:
        out.write(b"half")
        raise RuntimeError("writer died")
    if store.uploads_on_close:  # a local file is visible while written; an upload that never ran is not
        assert not store.exists(failed)


# -- the S3 store's client ---------------------------------------------------------------------------------
class RecordingClient:
    """A boto3 S3 client double: records calls, answers a conditional create as S3 would."""

    def __init__(self, put_error: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.put_error = put_error

    def put_object(self, **kwargs: Any) -> Any:
        self.calls.append(("put_object", kwargs))
        if self.put_error:
            status = {"PreconditionFailed": 412, "AccessDenied": 403}[self.put_error]
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": self.put_error}, "ResponseMetadata": {"HTTPStatusCode": status}},
                "PutObject",
            )
        return {}

    def upload_file(self, Filename: str, Bucket: str, Key: str, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
        self.calls.append(("upload_file", (Path(Filename).read_bytes(), Bucket, Key)))


def _s3_store(client: s3.S3Client | None = None) -> s3.S3Store:
    # The FileSystem is never touched by these tests: only boto3 calls are made.
    return s3.S3Store(
        fs=pafs.LocalFileSystem(), root="bucket/lake", url="s3://bucket/lake", bucket="bucket", client=client
    )


def test_injected_client_makes_the_uploads_and_conditional_creates() -> None:
    client = RecordingClient()
    store = _s3_store(client)
    assert store.create_exclusive("bucket/lake/t/_manifests/1.json", b"{}")
    with store.open_output("bucket/lake/t/_staging/p.parquet") as out:
        out.write(b"part")
    assert client.calls[0] == (
        "put_object",
        {"Bucket": "bucket", "Key": "lake/t/_manifests/1.json", "Body": b"{}", "IfNoneMatch": "*"},
    )
    assert client.calls[1] == ("upload_file", (b"part", "bucket", "lake/t/_staging/p.parquet"))


def test_conditional_create_lost_or_refused_through_the_injected_client() -> None:
    assert not _s3_store(RecordingClient("PreconditionFailed")).create_exclusive("bucket/lake/m.json", b"{}")
    with pytest.raises(LakeError) as caught:
        _s3_store(RecordingClient("AccessDenied")).create_exclusive("bucket/lake/m.json", b"{}")
    assert not caught.value.retriable
    assert str(caught.value) == "lake: cannot create s3://bucket/lake/m.json: AccessDenied"


def test_open_store_passes_the_injected_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    client = RecordingClient()
    store = open_store("s3://bucket/lake", s3_client=client)
    assert isinstance(store, s3.S3Store) and store.s3_client() is client
    assert isinstance(open_store("/tmp/lake"), LocalStore)


def test_each_store_builds_its_own_client_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[RecordingClient] = []

    def build() -> RecordingClient:
        built.append(RecordingClient())
        return built[-1]

    monkeypatch.setattr(s3, "boto3_client", build)
    first, second = _s3_store(), _s3_store()
    seen: list[s3.S3Client] = []
    threads = [threading.Thread(target=lambda: seen.append(first.s3_client())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(c is built[0] for c in seen)
    assert second.s3_client() is not first.s3_client()
    assert not hasattr(s3, "_client")


# -- no import cycle ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["replicator.lake.s3", "replicator.lake.store", "replicator.lake.base"])
def test_each_store_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=LAKE_PACKAGE.parents[1])


def _lake_imports(module: str) -> set[str]:
    """The sibling lake modules `module` imports anywhere in it, function bodies included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((LAKE_PACKAGE / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
    return found


def test_store_modules_import_no_cycle() -> None:
    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        for dep in _lake_imports(module):
            visit(dep, (*path, module))

    for module in ("store", "s3", "base"):
        visit(module, ())
    assert "store" not in _lake_imports("s3")


@pytest.mark.parametrize("value", ["abc", "0", "-2", "2.5"])
def test_a_bad_aws_max_attempts_is_one_clear_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", value)
    with pytest.raises(ConfigError, match=rf"AWS_MAX_ATTEMPTS is '{re.escape(value)}': set it to a whole number"):
        open_store("s3://bucket/lake")


def test_aws_max_attempts_unset_or_blank_is_five(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert s3.aws_max_attempts() == 5
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", " ")
    assert s3.aws_max_attempts() == 5
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    assert s3.aws_max_attempts() == 3
